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

/// 1-2-5 ticks covering [lo, hi] (positive), for log axes of ratios.
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for e in a..=b {
        for m in [1.0, 2.0, 5.0] {
            let t = m * 10f64.powi(e);
            if t >= lo * 0.999 && t <= hi * 1.001 {
                v.push(t);
            }
        }
    }
    v
}

/// The 1-2-5 values just below `lo` and just above `hi`.
fn range_125(lo: f64, hi: f64) -> (f64, f64) {
    let below = |x: f64| {
        let e = x.log10().floor();
        let p = 10f64.powf(e);
        [5.0, 2.0, 1.0]
            .into_iter()
            .map(|m| m * p)
            .find(|&t| t <= x * 1.0001)
            .unwrap_or(p)
    };
    let above = |x: f64| {
        let e = x.log10().floor();
        let p = 10f64.powf(e);
        [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * p)
            .find(|&t| t >= x * 0.9999)
            .unwrap_or(10.0 * p)
    };
    (below(lo), above(hi))
}

/// A ratio as an axis label: "0.05", "0.2", "1", "20".
fn ratio_label(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One bar of the ratio plot.
pub struct RatioBar {
    pub label: String,
    pub ratio: f64,
    /// The goal's ratio and whether it was met.
    pub goal: Option<(f64, bool)>,
    /// Higher is better (GUPS, STREAM) rather than lower (times).
    pub higher_better: bool,
}

const MET: &str = "#2ca02c";
const MISSED: &str = "#d62728";
const NO_GOAL: &str = "#999999";

/// Horizontal bars of Margay/Linux from 1 on a log axis with 1-2-5 ticks,
/// each goal marked with a triangle, and a legend.
pub fn ratio_plot(bars: &[RatioBar]) -> String {
    let rows = bars.len().max(1);
    let top = 50.0;
    let row_h = 22.0;
    let ph = row_h * rows as f64;
    let h = (top + ph + 100.0) as u32;
    let mut out = header(960, h);
    let vals = bars
        .iter()
        .flat_map(|b| [Some(b.ratio), b.goal.map(|g| g.0)])
        .flatten()
        .filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = vals.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = range_125(lo / 1.15, hi * 1.15);
    let p = Panel {
        x: 330.0,
        y: top,
        w: 560.0,
        h: ph,
        x_lo: lo,
        x_hi: hi,
        y_lo: 0.0,
        y_hi: rows as f64,
        log_x: true,
        log_y: false,
    };
    let _ = writeln!(
        out,
        r#"<text x="480" y="22" font-size="15" text-anchor="middle">Margay / Linux per metric (median of the runs)</text>"#
    );
    // Grid and axis labels at 1-2-5 ratios, top and bottom.
    for t in ticks_125(lo, hi) {
        let x = p.px(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
            p.y,
            p.y + p.h,
            p.y - 4.0,
            ratio_label(t),
            p.y + p.h + 14.0,
            ratio_label(t)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        p.x, p.y, p.w, p.h
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">Margay / Linux (log scale; 1 = the same as Linux)</text>"#,
        p.x + p.w / 2.0,
        p.y + p.h + 32.0
    );
    let one = p.px(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{one:.1}" y1="{:.1}" x2="{one:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4,3"/>"##,
        p.y,
        p.y + p.h
    );
    for (i, b) in bars.iter().enumerate() {
        let y = p.y + row_h * i as f64 + 4.0;
        let color = match b.goal {
            Some((_, true)) => MET,
            Some((_, false)) => MISSED,
            None => NO_GOAL,
        };
        let (a, z) = (one.min(p.px(b.ratio)), one.max(p.px(b.ratio)));
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}{}</text><rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="14" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10">{:.2}</text>"#,
            p.x - 6.0,
            y + 11.0,
            esc(&b.label),
            if b.higher_better { " \u{2191}" } else { "" },
            (z - a).max(1.0),
            z + 4.0,
            y + 11.0,
            b.ratio
        );
        if let Some((g, _)) = b.goal {
            let gx = p.px(g);
            let _ = writeln!(
                out,
                r##"<path d="M{:.1},{:.1} L{:.1},{:.1} L{gx:.1},{:.1} Z" fill="#000"/>"##,
                gx - 5.0,
                y - 3.0,
                gx + 5.0,
                y - 3.0,
                y + 5.0
            );
        }
    }
    // Legend.
    let ly = p.y + p.h + 52.0;
    let mut x = 40.0;
    for (color, text) in [
        (MET, "goal met"),
        (MISSED, "goal missed"),
        (NO_GOAL, "no goal"),
    ] {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="14" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{text}</text>"#,
            ly - 10.0,
            x + 18.0,
            ly
        );
        x += 110.0;
    }
    let _ = writeln!(
        out,
        r##"<path d="M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z" fill="#000"/><text x="{:.1}" y="{ly:.1}" font-size="11">goal (the ratio to reach)</text>"##,
        x,
        ly - 10.0,
        x + 10.0,
        ly - 10.0,
        x + 5.0,
        ly - 2.0,
        x + 16.0
    );
    x += 180.0;
    let _ = writeln!(
        out,
        r##"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4,3"/><text x="{:.1}" y="{ly:.1}" font-size="11">1 = parity</text>"##,
        ly - 12.0,
        x,
        ly + 2.0,
        x + 8.0
    );
    let _ = writeln!(
        out,
        r#"<text x="40" y="{:.1}" font-size="11">Times: lower is better (left of 1: Margay faster). Marked &#8593;: higher is better (right of 1: Margay faster).</text>"#,
        ly + 22.0
    );
    out.push_str("</svg>\n");
    out
}

/// A saved run's median ratio and the interval its runs span.
pub type Point = (f64, Option<(f64, f64)>);

/// One goal metric's ratio over the saved runs.
pub struct Series {
    pub label: String,
    pub goal: f64,
    /// The goal is a maximum (times) rather than a minimum.
    pub goal_is_max: bool,
    /// Per saved run: the median ratio and the interval its runs span.
    pub points: Vec<Option<Point>>,
}

/// The goal metrics' ratios over the saved runs (`runs`, oldest first): one
/// panel per metric, log y axis with 1-2-5 ticks, the goal dashed, parity
/// dotted, each run's median with its interval.
pub fn history_plot(runs: &[&str], series: &[Series]) -> String {
    let cols = 2;
    let (pw, ph) = (410.0, 170.0);
    let nrows = series.len().div_ceil(cols).max(1);
    let h = (70.0 + nrows as f64 * (ph + 95.0)) as u32;
    let mut out = header(1000, h);
    let _ = writeln!(
        out,
        r#"<text x="500" y="22" font-size="15" text-anchor="middle">Margay / Linux of each goal metric over the saved runs</text>"#
    );
    let _ = writeln!(
        out,
        r##"<circle cx="250" cy="42" r="3.5" fill="#1f77b4"/><text x="258" y="46" font-size="11">median ratio, bar: the interval its runs span</text><line x1="540" y1="42" x2="570" y2="42" stroke="{MISSED}" stroke-dasharray="6,3"/><text x="575" y="46" font-size="11">goal</text><line x1="620" y1="42" x2="650" y2="42" stroke="#000" stroke-dasharray="1,3"/><text x="655" y="46" font-size="11">1 = parity</text>"##
    );
    if series.is_empty() || runs.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="500" y="100" font-size="13" text-anchor="middle">no saved runs with goal metrics yet</text>"#
        );
    }
    for (k, s) in series.iter().enumerate() {
        let (cx, cy) = (k % cols, k / cols);
        let vals = s
            .points
            .iter()
            .flatten()
            .flat_map(|(r, range)| {
                let (a, b) = range.unwrap_or((*r, *r));
                [*r, a, b]
            })
            .chain([s.goal, 1.0])
            .filter(|v| *v > 0.0 && v.is_finite());
        let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = range_125(lo / 1.1, hi * 1.1);
        let n = runs.len().max(1);
        let p = Panel {
            x: 70.0 + cx as f64 * (pw + 70.0),
            y: 80.0 + cy as f64 * (ph + 95.0),
            w: pw,
            h: ph,
            x_lo: -0.5,
            x_hi: n as f64 - 0.5,
            y_lo: lo,
            y_hi: hi,
            log_x: false,
            log_y: true,
        };
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{} (goal {} {})</text>"##,
            p.x,
            p.y,
            p.w,
            p.h,
            p.x + p.w / 2.0,
            p.y - 8.0,
            esc(&s.label),
            if s.goal_is_max { "&#8804;" } else { "&#8805;" },
            ratio_label(s.goal)
        );
        for t in ticks_125(lo, hi) {
            let y = p.py(t);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                p.x,
                p.x + p.w,
                p.x - 4.0,
                y + 3.0,
                ratio_label(t)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">Margay / Linux</text>"#,
            p.x - 40.0,
            p.y + p.h / 2.0,
            p.x - 40.0,
            p.y + p.h / 2.0
        );
        for (i, name) in runs.iter().enumerate() {
            let x = p.px(i as f64);
            let _ = writeln!(
                out,
                r#"<text x="{x:.1}" y="{:.1}" font-size="9" text-anchor="end" transform="rotate(-35 {x:.1} {:.1})">{}</text>"#,
                p.y + p.h + 12.0,
                p.y + p.h + 12.0,
                esc(name)
            );
        }
        for (v, color, dash) in [(s.goal, MISSED, "6,3"), (1.0, "#000", "1,3")] {
            let y = p.py(v);
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-dasharray="{dash}"/>"#,
                p.x,
                p.x + p.w
            );
        }
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, pt)| pt.map(|(r, _)| (i as f64, r)))
            .collect();
        if pts.len() > 1 {
            p.polyline(&mut out, pts.iter().copied(), COLORS[0]);
        }
        for (i, pt) in s.points.iter().enumerate() {
            let Some((r, range)) = pt else { continue };
            let x = p.px(i as f64);
            if let Some((a, b)) = range {
                let _ = writeln!(
                    out,
                    r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/>"#,
                    p.py(*a),
                    p.py(*b),
                    COLORS[0]
                );
            }
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{}: {:.2}</title></circle>"#,
                p.py(*r),
                COLORS[0],
                esc(runs.get(i).copied().unwrap_or("")),
                r
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `s` as XML with a real parser: an `svg` root with a size, and
    /// no NaN or infinite coordinates anywhere. Returns the document's texts.
    pub fn parse_svg(s: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert!(root.attribute("width").is_some() && root.attribute("viewBox").is_some());
        for n in doc.descendants().filter(|n| n.is_element()) {
            for a in n.attributes() {
                let v = a.value();
                assert!(
                    !v.contains("NaN") && !v.contains("inf"),
                    "{}={v} in <{}>",
                    a.name(),
                    n.tag_name().name()
                );
            }
        }
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    fn balanced(s: &str) -> bool {
        parse_svg(s);
        true
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
        assert!(balanced(&s));
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
                ratio: 0.04,
                goal: Some((0.1, true)),
                higher_better: false,
            },
            RatioBar {
                label: "syscall".into(),
                ratio: 2.5,
                goal: Some((1.0, false)),
                higher_better: false,
            },
            RatioBar {
                label: "stream".into(),
                ratio: 1.0,
                goal: None,
                higher_better: true,
            },
        ]);
        let texts = parse_svg(&s);
        assert!(texts.iter().any(|t| t == "fwq <noise> & co"), "{texts:?}");
        // The axis: 1-2-5 ratios from below the smallest to above the
        // largest value, each at the top and the bottom, and nothing else
        // that looks like a number but the bars' values.
        for t in ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5"] {
            assert_eq!(
                texts.iter().filter(|x| *x == t).count(),
                2,
                "{t}: {texts:?}"
            );
        }
        let numbers: Vec<&String> = texts.iter().filter(|t| t.parse::<f64>().is_ok()).collect();
        assert_eq!(numbers.len(), 8 * 2 + 3, "{numbers:?}");
        // Bars, goal triangles, legend.
        assert_eq!(s.matches("<path d=").count(), 2 + 1);
        for l in [
            "goal met",
            "goal missed",
            "no goal",
            "goal (the ratio to reach)",
            "1 = parity",
        ] {
            assert!(texts.iter().any(|t| t == l), "{l}");
        }
        assert!(texts.iter().any(|t| t == "stream \u{2191}"));
        parse_svg(&ratio_plot(&[]));
    }

    #[test]
    fn ticks_and_ranges() {
        assert_eq!(ticks_125(0.05, 5.0), [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]);
        assert_eq!(range_125(0.043, 2.9), (0.02, 5.0));
        assert_eq!(range_125(1.0, 1.0), (1.0, 1.0));
        assert_eq!(ratio_label(0.2), "0.2");
        assert_eq!(ratio_label(20.0), "20");
    }

    #[test]
    fn history_plot_is_wellformed() {
        let s = history_plot(
            &["old", "mid", "new"],
            &[
                Series {
                    label: "thread: create+join median".into(),
                    goal: 0.5,
                    goal_is_max: true,
                    points: vec![Some((4.5, Some((4.0, 5.0)))), None, Some((3.0, None))],
                },
                Series {
                    label: "stream: STREAM triad".into(),
                    goal: 1.0,
                    goal_is_max: false,
                    points: vec![Some((0.9, None)), Some((0.8, None)), Some((0.95, None))],
                },
            ],
        );
        let texts = parse_svg(&s);
        assert!(
            texts
                .iter()
                .any(|t| t == "thread: create+join median (goal \u{2264} 0.5)"),
            "{texts:?}"
        );
        assert_eq!(s.matches("<circle").count(), 1 + 2 + 3);
        assert_eq!(texts.iter().filter(|t| *t == "mid").count(), 2);
        parse_svg(&history_plot(&[], &[]));
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
