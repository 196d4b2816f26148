//! SVG plots for `margay bench`: fwq's per-quantum times over the run for each
//! kernel side by side with a histogram of all of them, and the Margay/Linux
//! ratios against their goals. Plain SVG text, no dependencies.

use std::fmt::Write as _;

use super::parse::CoreSamples;

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A rectangle of the picture with data ranges; y may be logarithmic.
struct Panel {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    x_lo: f64,
    x_hi: f64,
    y_lo: f64,
    y_hi: f64,
    log_x: bool,
    log_y: bool,
}

fn tr(v: f64, log: bool) -> f64 {
    if log {
        v.max(1e-12).log10()
    } else {
        v
    }
}

impl Panel {
    fn px(&self, v: f64) -> f64 {
        let (lo, hi) = (tr(self.x_lo, self.log_x), tr(self.x_hi, self.log_x));
        self.x + self.w * (tr(v, self.log_x) - lo) / (hi - lo).max(1e-12)
    }

    fn py(&self, v: f64) -> f64 {
        let (lo, hi) = (tr(self.y_lo, self.log_y), tr(self.y_hi, self.log_y));
        self.y + self.h - self.h * (tr(v, self.log_y) - lo) / (hi - lo).max(1e-12)
    }

    fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
        if log {
            let (a, b) = (lo.max(1e-12).log10().floor(), hi.max(1e-12).log10().ceil());
            let mut v = Vec::new();
            let mut e = a;
            while e <= b {
                let t = 10f64.powf(e);
                if t >= lo * 0.999 && t <= hi * 1.001 {
                    v.push(t);
                }
                e += 1.0;
            }
            if v.len() < 2 {
                v = vec![lo, hi];
            }
            v
        } else {
            (0..=4)
                .map(|i| lo + (hi - lo) * f64::from(i) / 4.0)
                .collect()
        }
    }

    fn frame(&self, out: &mut String, title: &str, xlabel: &str, ylabel: &str) {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            self.x, self.y, self.w, self.h
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="14" text-anchor="middle">{}</text>"#,
            self.x + self.w / 2.0,
            self.y - 8.0,
            esc(title)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            self.x + self.w / 2.0,
            self.y + self.h + 32.0,
            esc(xlabel)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
            self.x - 48.0,
            self.y + self.h / 2.0,
            self.x - 48.0,
            self.y + self.h / 2.0,
            esc(ylabel)
        );
        for t in Self::ticks(self.x_lo, self.x_hi, self.log_x) {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                self.px(t),
                self.y + self.h + 14.0,
                num(t)
            );
        }
        for t in Self::ticks(self.y_lo, self.y_hi, self.log_y) {
            let y = self.py(t);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                self.x,
                self.x + self.w,
                self.x - 4.0,
                y + 3.0,
                num(t)
            );
        }
    }

    fn polyline(&self, out: &mut String, pts: impl Iterator<Item = (f64, f64)>, color: &str) {
        out.push_str(r#"<polyline fill="none" stroke-width="1" stroke=""#);
        out.push_str(color);
        out.push_str(r#"" points=""#);
        for (x, y) in pts {
            let _ = write!(out, "{:.1},{:.1} ", self.px(x), self.py(y));
        }
        out.push_str("\"/>\n");
    }
}

/// A short label for an axis value.
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        let m = format!("{:.3}", v / 1e6);
        format!("{}M", m.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn header(w: u32, h: u32) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    )
}

/// fwq: for each (kernel, samples), a panel of per-quantum time (µs, log
/// scale) over the run with one line per core, side by side; below, a
/// histogram of all quanta per kernel on log-log axes.
pub fn fwq_plot(kernels: &[(&str, &[CoreSamples])]) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    let all = || {
        kernels
            .iter()
            .flat_map(|(_, c)| c.iter().flat_map(|c| c.ns.iter().copied()))
    };
    let (lo, hi) = all().fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (1.0, 10.0)
    } else {
        (us(lo), us(hi).max(us(lo) * 1.01))
    };
    let n = kernels.len().max(1);
    let pw = 1000.0 / n as f64;
    let mut out = header(1100, 760);
    for (i, (name, cores)) in kernels.iter().enumerate() {
        let quanta = cores.iter().map(|c| c.ns.len()).max().unwrap_or(1).max(2);
        let p = Panel {
            x: 70.0 + i as f64 * pw,
            y: 40.0,
            w: pw - 80.0,
            h: 280.0,
            x_lo: 0.0,
            x_hi: (quanta - 1) as f64,
            y_lo: lo,
            y_hi: hi,
            log_x: false,
            log_y: true,
        };
        p.frame(
            &mut out,
            &format!("{name}: time per quantum"),
            "quantum",
            "µs (log)",
        );
        for (k, c) in cores.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            p.polyline(
                &mut out,
                c.ns.iter().enumerate().map(|(q, &v)| (q as f64, us(v))),
                color,
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{color}">core {}</text>"#,
                p.x + 6.0,
                p.y + 14.0 + 13.0 * k as f64,
                c.core
            );
        }
    }
    // Histogram: 50 log-spaced bins over the common range.
    const BINS: usize = 50;
    let (llo, lhi) = (lo.log10(), hi.log10() + 1e-9);
    let mut counts = Vec::new();
    let mut top = 1.0f64;
    for (_, cores) in kernels {
        let mut b = [0u64; BINS];
        for v in cores.iter().flat_map(|c| c.ns.iter()) {
            let f = (us(*v).log10() - llo) / (lhi - llo);
            let i = ((f * BINS as f64) as usize).min(BINS - 1);
            b[i] += 1;
        }
        top = top.max(b.iter().copied().max().unwrap_or(1) as f64);
        counts.push(b);
    }
    let p = Panel {
        x: 70.0,
        y: 420.0,
        w: 1000.0,
        h: 280.0,
        x_lo: lo,
        x_hi: hi,
        y_lo: 0.8,
        y_hi: top * 1.2,
        log_x: true,
        log_y: true,
    };
    p.frame(
        &mut out,
        "histogram of quantum times, all cores",
        "µs per quantum (log)",
        "quanta (log)",
    );
    for (k, ((name, _), b)) in kernels.iter().zip(&counts).enumerate() {
        let color = COLORS[k % COLORS.len()];
        let edge = |i: usize| 10f64.powf(llo + (lhi - llo) * i as f64 / BINS as f64);
        let pts = (0..BINS).flat_map(|i| {
            let y = (b[i] as f64).max(0.8);
            [(edge(i), y), (edge(i + 1), y)]
        });
        p.polyline(&mut out, pts, color);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" fill="{color}">{}</text>"#,
            p.x + p.w - 120.0,
            p.y + 16.0 + 14.0 * k as f64,
            esc(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One bar of the ratio plot.
pub struct RatioBar {
    pub label: String,
    pub ratio: f64,
    /// The goal's ratio and whether it was met.
    pub goal: Option<(f64, bool)>,
}

/// Horizontal bars of Margay/Linux on a log scale, with each goal marked.
pub fn ratio_plot(bars: &[RatioBar]) -> String {
    let rows = bars.len().max(1);
    let h = 60 + 22 * rows as u32 + 50;
    let mut out = header(900, h);
    let vals = bars
        .iter()
        .flat_map(|b| [Some(b.ratio), b.goal.map(|g| g.0)])
        .flatten()
        .filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = vals.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let p = Panel {
        x: 330.0,
        y: 40.0,
        w: 540.0,
        h: 22.0 * rows as f64,
        x_lo: 10f64.powf(lo.log10().floor()),
        x_hi: 10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)),
        y_lo: 0.0,
        y_hi: rows as f64,
        log_x: true,
        log_y: false,
    };
    p.frame(
        &mut out,
        "Margay / Linux (log scale; | marks the goal)",
        "ratio",
        "",
    );
    let one = p.px(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{one:.1}" y1="{:.1}" x2="{one:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="3,3"/>"##,
        p.y,
        p.y + p.h
    );
    for (i, b) in bars.iter().enumerate() {
        let y = p.y + 22.0 * i as f64 + 4.0;
        let color = match b.goal {
            Some((_, true)) => "#2ca02c",
            Some((_, false)) => "#d62728",
            None => "#999",
        };
        let (a, z) = (one.min(p.px(b.ratio)), one.max(p.px(b.ratio)));
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="14" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10">{:.2}</text>"#,
            p.x - 6.0,
            y + 11.0,
            esc(&b.label),
            (z - a).max(1.0),
            z + 4.0,
            y + 11.0,
            b.ratio
        );
        if let Some((g, _)) = b.goal {
            let gx = p.px(g);
            let _ = writeln!(
                out,
                r##"<line x1="{gx:.1}" y1="{:.1}" x2="{gx:.1}" y2="{:.1}" stroke="#000" stroke-width="2"/>"##,
                y - 2.0,
                y + 16.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced(s: &str) -> bool {
        s.starts_with("<svg")
            && s.trim_end().ends_with("</svg>")
            && !s.contains("NaN")
            && !s.contains("inf\"")
    }

    #[test]
    fn fwq_plot_is_wellformed() {
        let a = vec![
            CoreSamples {
                core: 0,
                ns: vec![1000, 1100, 5000, 1000],
            },
            CoreSamples {
                core: 1,
                ns: vec![1200, 1000, 1000, 90000],
            },
        ];
        let b = vec![CoreSamples {
            core: 0,
            ns: vec![1000, 1001, 1002],
        }];
        let s = fwq_plot(&[("Linux", &a), ("Margay", &b)]);
        assert!(balanced(&s), "{s}");
        assert_eq!(s.matches("<polyline").count(), 3 + 2);
        assert!(s.contains("Linux: time per quantum") && s.contains("core 1"));
        // No samples at all still gives a picture.
        assert!(balanced(&fwq_plot(&[("Linux", &[])])));
    }

    #[test]
    fn ratio_plot_is_wellformed() {
        let s = ratio_plot(&[
            RatioBar {
                label: "fwq <noise> & co".into(),
                ratio: 0.05,
                goal: Some((0.1, true)),
            },
            RatioBar {
                label: "syscall".into(),
                ratio: 2.5,
                goal: Some((1.0, false)),
            },
            RatioBar {
                label: "no goal".into(),
                ratio: 1.0,
                goal: None,
            },
        ]);
        assert!(balanced(&s), "{s}");
        assert!(s.contains("fwq &lt;noise&gt; &amp; co"));
        assert_eq!(s.matches("<rect x=").count(), 1 + 3);
        assert!(balanced(&ratio_plot(&[])));
    }

    #[test]
    fn axis_numbers() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(5.0), "5.00");
        assert_eq!(num(250.0), "250");
        assert_eq!(num(2500.0), "2.5k");
        assert_eq!(num(2000.0), "2k");
        assert_eq!(num(1_500_000.0), "1.5M");
    }
}
