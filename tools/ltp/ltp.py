#!/usr/bin/env python3
"""Run LTP's syscalls tests natively and on Margay, classify and compare them.

See README.md, "Linux compatibility: LTP". Python 3 standard library only.

  tools/ltp.sh --ltp /work/ltp-src --out /work/ltp-results [--margay target/release/margay]
               [--filter REGEX] [--families a,b] [--sample K] [--jobs N]
               [--native-timeout 30] [--margay-timeout 60] [--no-native] [--no-margay]
               [--prev OLD/results.json] [--resume] [--list]

The LTP tree is built first when it is not (static syscalls tests; build
dependencies are installed with apt-get when missing). Every test of
runtest/syscalls that is not excluded by tools/ltp/exclude.txt runs as
`BINARY ARGS` natively and as `margay run --kmsg -- BINARY ARGS` on Margay, in
the testcase's directory (where LTP finds its helper binaries and data files),
with TMPDIR a fresh scratch directory per run.
"""

import argparse
import concurrent.futures
import datetime
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYSCALLS = "testcases/kernel/syscalls"
STAMP = ".margay-ltp-built"
MARK_VAR = "MARGAY_LTP_RUN"

# LTP's exit status is a bit mask of the worst results (lib/tst_test.c).
TFAIL, TBROK, TWARN, TCONF = 1, 2, 4, 32

# Source markers of tests that can change the host: a test carrying one must
# be listed in exclude.txt (or explicitly allowed with --allow-unreviewed).
RISKY_MARKERS = [
    (re.compile(r"\.(needs_device|mount_device|format_device|all_filesystems)\s*="),
     "attaches a loop device, makes a filesystem and mounts it on the host"),
    (re.compile(r"\.needs_rofs\s*="), "mounts a read-only filesystem on the host"),
    (re.compile(r"\.needs_hugetlbfs\s*="), "mounts hugetlbfs on the host"),
    (re.compile(r"\.needs_overlay\s*="), "mounts overlayfs on the host"),
    (re.compile(r"\.needs_cgroup_ctrls\s*="), "creates cgroups in the host's hierarchy"),
    (re.compile(r"\.save_restore\s*="), "writes /proc/sys (system-wide settings)"),
    (re.compile(r"FILE_PRINTF\([^)]*/proc/sys"), "writes /proc/sys (system-wide settings)"),
    (re.compile(r"\b(SAFE_)?(MOUNT|mount|umount2?|swapon|swapoff|pivot_root)\s*\("),
     "mounts, unmounts or swaps on the host"),
    (re.compile(r"\b(settimeofday|clock_settime|stime|adjtimex|clock_adjtime)\s*\("),
     "may set the system clock"),
    (re.compile(r"useradd|userdel"), "adds or removes host users"),
    (re.compile(r"MADV_HWPOISON|MADV_SOFT_OFFLINE"), "poisons or offlines host memory pages"),
]

# Kernel log (margay run --kmsg) lines. ERROR lines make a Margay run fail
# (as McKernel's harness does); the others are informative: boot messages,
# features the LWK reports as unsupported (the test's own result shows
# whether that mattered), and events a test may cause on purpose.
KMSG_BOOT = re.compile(r"^(Margay LWK booting|pmem:|tsc:|lapic timer:|acpi:|smp:|loaded \S+ entry)")
KMSG_GAP = re.compile(r"unsupported|not supported|ENOSYS|only \S+ is supported")
KMSG_EXPECTED = re.compile(
    r"^(process killed by signal|user .* at rip|execve |clone: flags|margay: .*cannot execute)")
KMSG_ERROR = re.compile(
    r"panic|PANIC|BUG|WARN|failed|corrupt|bad frame|cannot build|no handler|past its end|"
    r"more than \d+ regions|assert|double fault|kernel .*fault|could not|out of memory|leak",
    re.I)
KMSG_START = re.compile(r"^Margay LWK booting", re.M)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- build

BUILD_DEPS = {  # command or file -> Debian package
    "autoconf": "autoconf", "automake": "automake", "m4": "m4", "pkg-config": "pkg-config",
    "make": "make", "gcc": "gcc", "git": "git", "bison": "bison", "flex": "flex",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
}


def install_build_deps():
    need = []
    for what, pkg in BUILD_DEPS.items():
        ok = os.path.exists(what) if what.startswith("/") else shutil.which(what)
        if not ok:
            need.append(pkg)
    if not need:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"ltp: installing build dependencies: {' '.join(need)}")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + need, env=env, check=True)


def git_commit(ltp):
    try:
        return subprocess.run(["git", "-C", ltp, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def build_ltp(ltp, jobs):
    stamp = os.path.join(ltp, STAMP)
    if os.path.exists(stamp):
        return
    install_build_deps()
    logf = os.path.join(ltp, "margay-ltp-build.log")
    log(f"ltp: building {ltp} (static syscalls tests; log in {logf})")
    with open(logf, "a") as out:
        def run(cmd, check=True):
            log("ltp: " + " ".join(cmd))
            return subprocess.run(cmd, cwd=ltp, stdout=out, stderr=subprocess.STDOUT, check=check)
        if not os.path.exists(os.path.join(ltp, "configure")):
            run(["make", "autotools"])
        if not os.path.exists(os.path.join(ltp, "include/config.h")):
            run(["./configure", "LDFLAGS=-static"])
        # -k: a test that does not link statically is skipped, not fatal.
        r = run(["make", f"-j{jobs}", "-k", "-C", SYSCALLS], check=False)
    with open(stamp, "w") as f:
        f.write(f"{git_commit(ltp)} make exit {r.returncode}\n")


# ---------------------------------------------------------------- tests

def family_of(name, binary_dir):
    if binary_dir:
        return os.path.basename(binary_dir)
    n = re.sub(r"_64$", "", name)
    return re.sub(r"_?\d+$", "", n) or name


def index_binaries(ltp):
    """Basename -> path of every built executable under testcases/kernel/syscalls."""
    found = {}
    root = os.path.join(ltp, SYSCALLS)
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if "." in f or not os.access(p, os.X_OK):
                continue
            try:
                with open(p, "rb") as fh:
                    if fh.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            found.setdefault(f, p)
    return found


def parse_runtest(path):
    tests = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            tests.append({"name": parts[0], "cmd": parts[1], "args": parts[2:]})
    return tests


def load_exclusions(path):
    """(exclusions, reviewed): `PATTERN REASON` excludes, `+PATTERN REASON` marks a
    test whose source carries a risky marker as reviewed and safe to run."""
    rules, allowed = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pat, _, reason = line.partition(" ")
            reason = reason.strip()
            if not reason:
                sys.exit(f"{path}:{n}: exclusion '{pat}' has no reason")
            if pat.startswith("+"):
                allowed.append((pat[1:], reason))
            else:
                rules.append((pat, reason))
    return rules, allowed


def excluded(name, rules):
    for pat, reason in rules:
        if fnmatch.fnmatchcase(name, pat):
            return reason
    return None


def risky(binary):
    """Reasons a test's source looks able to change the host."""
    if not binary:
        return []
    src = binary + ".c"
    if not os.path.exists(src):  # foo_16 / foo_64 are built from foo.c
        src = re.sub(r"_(16|64)$", "", binary) + ".c"
    try:
        text = open(src, errors="replace").read()
    except OSError:
        return []
    return sorted({why for rx, why in RISKY_MARKERS if rx.search(text)})


# ---------------------------------------------------------------- one run

def snapshot_shm():
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def snapshot_ipc():
    ids = set()
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) > 1:
                        ids.add((kind, cols[1]))
        except (OSError, StopIteration):
            pass
    return ids


def find_procs(token, sid):
    """Live processes carrying our run token in their environment or in our session."""
    me = os.getpid()
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat.rsplit(")", 1)[1].split()
            state, session = fields[0], int(fields[3])
            if state == "Z":
                continue
            env = b""
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                pass
            if session == sid or token.encode() in env:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                hits.append((int(pid), cmd))
        except (OSError, ValueError, IndexError):
            continue
    return hits


def split_kmsg(text):
    """(program output, kernel log) of a `margay run --kmsg` output."""
    starts = [m.start() for m in KMSG_START.finditer(text)]
    if not starts:
        return text, ""
    return text[:starts[-1]], text[starts[-1]:]


def classify_kmsg(kmsg):
    out = {"error": [], "gap": [], "expected": [], "other": []}
    for line in kmsg.splitlines():
        line = line.strip()
        if not line or KMSG_BOOT.search(line):
            continue
        if KMSG_GAP.search(line):
            out["gap"].append(line)
        elif KMSG_EXPECTED.search(line):
            out["expected"].append(line)
        elif KMSG_ERROR.search(line):
            out["error"].append(line)
        else:
            out["other"].append(line)
    return out


def exit_class(rc, timed_out, text, margay):
    if timed_out:
        return "timeout"
    if margay and (rc == 70 or "KERNEL PANIC" in text):
        return "panic"
    if rc < 0:
        return "signal"
    if margay and rc in (126, 127):
        return "exec-error"
    if rc >= 128:
        return "signal"
    if rc == 0:
        return "pass"
    if rc == TCONF:
        return "tconf"
    if rc & TBROK:
        return "broken"
    if rc & TFAIL:
        return "fail"
    if rc & TWARN:
        return "warn"
    return f"exit-{rc}"


ERR_LINE = re.compile(r"\b(TFAIL|TBROK|TWARN)\b|^margay: |KERNEL PANIC|Test timeouted|Test killed")


def first_errors(text, n=3):
    return [l.strip()[:300] for l in text.splitlines() if ERR_LINE.search(l)][:n]


def first_tconf(text):
    for l in text.splitlines():
        if re.search(r"\bTCONF\b", l):
            return l.strip()[:300]
    return None


def run_one(test, side, cfg, serial):
    """Run one test on one side; return its result record."""
    scratch = tempfile.mkdtemp(prefix=f"ltp-{test['name']}-{side}-", dir=cfg.scratch)
    # Like /tmp: tests that drop root (to nobody) still make their dirs here.
    os.chmod(scratch, 0o1777)
    token = uuid.uuid4().hex
    binary = test["binary"]
    cwd = os.path.dirname(binary)
    env = dict(os.environ)
    env.update({
        "LTPROOT": cfg.ltp, "TMPDIR": scratch, "PATH": cwd + ":" + env.get("PATH", "/usr/bin:/bin"),
        "LTP_COLORIZE_OUTPUT": "0", MARK_VAR: token,
    })
    for kv in cfg.env:
        k, _, v = kv.partition("=")
        env[k] = v
    margay = side == "margay"
    cmd = [binary] + test["args"]
    timeout = cfg.native_timeout
    if margay:
        cmd = [cfg.margay, "run"] + cfg.margay_args + ["--kmsg", "--"] + cmd
        timeout = cfg.margay_timeout
    logpath = os.path.join(cfg.out, "logs", f"{test['name']}.{side}.log")
    shm_before = snapshot_shm()
    ipc_before = snapshot_ipc() if serial else None  # SysV IPC ids are not named
    t0 = time.monotonic()
    timed_out = False
    with open(logpath, "w") as lf:
        lf.write("$ " + " ".join(cmd) + "\n")
        lf.flush()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=lf,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = p.wait()
    dur = time.monotonic() - t0
    # Processes of the test still alive once it ended (the LTP library kills
    # and reaps its children itself): wait a moment, record, then end them.
    left = []
    for _ in range(5):
        left = find_procs(token, p.pid)
        if not left:
            break
        time.sleep(0.2)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # New /dev/shm entries and SysV IPC objects: other programs on the
    # machine (or the other side's runner) may create some meanwhile, so an
    # entry is the test's only when named after it or its family (LTP's
    # ltp_TCID_PID, cachestat02's cachestat_PID.bin), or
    # with --exclusive (nothing else runs here) and --jobs 1. Only the
    # test's are counted as leftovers and removed; others are noted.
    new_shm = sorted(snapshot_shm() - shm_before)
    ours = [s for s in new_shm if test["name"] in s or test["cmd"] in s or test["family"] in s
            or (serial and cfg.exclusive)]
    unattributed = [s for s in new_shm if s not in ours]
    new_shm = ours
    for s in new_shm:
        try:
            os.unlink(os.path.join("/dev/shm", s))
        except OSError:
            pass
    new_ipc = []
    if ipc_before is not None:
        new_ipc = sorted(snapshot_ipc() - ipc_before)
        if not cfg.exclusive:
            unattributed += [f"{k}:{i}" for k, i in new_ipc]
            new_ipc = []
        for kind, ident in new_ipc:
            flag = {"shm": "-m", "msg": "-q", "sem": "-s"}[kind]
            subprocess.run(["ipcrm", flag, ident], capture_output=True)
    with open(logpath, errors="replace") as f:
        text = f.read()
    prog, kmsg = split_kmsg(text) if margay else (text, "")
    cls = exit_class(rc, timed_out, text, margay)
    rec = {
        "class": cls, "rc": rc, "duration": round(dur, 3), "errors": first_errors(prog),
        "tconf": first_tconf(prog),
        "log": os.path.relpath(logpath, cfg.out),
    }
    flags = []
    if left:
        flags.append("leftover-procs")
        rec["leftover_procs"] = [c[:200] for _, c in left][:10]
    if new_shm:
        flags.append("leftover-shm")
        rec["leftover_shm"] = new_shm[:10]
    if new_ipc:
        flags.append("leftover-ipc")
        rec["leftover_ipc"] = [f"{k}:{i}" for k, i in new_ipc][:10]
    if margay:
        k = classify_kmsg(kmsg)
        rec["kmsg"] = {key: v[:10] for key, v in k.items() if v}
        if k["error"]:
            flags.append("kmsg-error")
    rec["flags"] = flags
    if unattributed:
        rec["new_unattributed"] = unattributed[:10]
    # The verdict: a run that passed but left something behind, or (on
    # Margay) logged a kernel error, fails.
    rec["verdict"] = flags[0] if cls in ("pass", "tconf") and flags else cls
    shutil.rmtree(scratch, ignore_errors=True)
    return rec


# ---------------------------------------------------------------- reports

NUM = re.compile(r"(?<![A-Za-z_0-9])(0x[0-9a-fA-F]+|\d+)")


def normalize(line):
    """A message with its numbers (pids, addresses, line numbers) as N, to group by."""
    return re.sub(r"\s+", " ", NUM.sub("N", line))[:160]


def native_ok(t):
    return t.get("native", {}).get("verdict") in ("pass", "tconf")


def margay_ok(t):
    m = t.get("margay", {}).get("verdict")
    if m == "pass":
        return True
    # TCONF on Margay counts only where Linux also says TCONF.
    return m == "tconf" and t.get("native", {}).get("verdict") == "tconf"


def margay_reason(t):
    """Why a test that passes natively does not pass on Margay (short, groupable)."""
    m = t.get("margay", {})
    v = m.get("verdict")
    text = " ".join(m.get("errors", []))
    kgap = " ".join(m.get("kmsg", {}).get("gap", []))
    if v in ("timeout", "panic", "exec-error"):
        return v
    if "mmap(" in text and "ENODEV" in text and "tst_test.c" in text:
        return "harness: MAP_SHARED /dev/shm mapping (ENODEV)"
    if v in ("leftover-procs", "leftover-shm", "leftover-ipc"):
        return v
    if v == "kmsg-error":
        return "kmsg error: " + normalize(m["kmsg"]["error"][0])
    if v == "tconf" and t.get("native", {}).get("verdict") == "pass":
        return "TCONF on Margay only: " + normalize(m.get("tconf") or "")
    if m.get("errors"):
        return normalize(m["errors"][0])
    if kgap:
        return "kmsg: " + normalize(m["kmsg"]["gap"][0])
    return v or "not run"


def write_reports(cfg, results, meta):
    tests = results["tests"]
    fams = {}
    for name, t in tests.items():
        fams.setdefault(t["family"], []).append((name, t))
    lines = []
    ran_n = [t for t in tests.values() if "native" in t]
    ran_m = [t for t in tests.values() if "margay" in t]
    both = [t for t in tests.values() if "native" in t and "margay" in t]
    nok = [t for t in both if native_ok(t)]
    mok = [t for t in nok if margay_ok(t)]
    pct = f"{100.0 * len(mok) / len(nok):.1f} %" if nok else "-"
    lines.append(f"# LTP syscalls on Margay ({meta['date']})\n")
    lines.append(f"LTP commit `{meta['ltp_commit']}`, margay `{meta.get('margay_commit', '?')}`, "
                 f"margay args `{' '.join(meta.get('margay_args', []))}`.\n")
    lines.append(f"- runtest entries: {meta['entries']}, excluded (tools/ltp/exclude.txt): "
                 f"{meta['excluded']}, not built: {meta['not_built']}, selected by this run's "
                 f"filter/sample: {meta.get('selected', '?')}")
    wall_n = sum(t["native"]["duration"] for t in ran_n)
    wall_m = sum(t["margay"]["duration"] for t in ran_m)
    lines.append(f"- run natively: {len(ran_n)} ({wall_n:.0f} s), on Margay: {len(ran_m)} "
                 f"({wall_m:.0f} s)")
    for run in meta.get("runs", [meta]):
        if "wall_seconds" in run:
            lines.append(f"- run of {','.join(run.get('sides', []))}: wall time {run['wall_seconds']:.0f} s "
                         f"(jobs {run.get('jobs')}, timeouts native {run.get('native_timeout')} s, "
                         f"Margay {run.get('margay_timeout')} s, sample {run.get('sample')}, "
                         f"filter {str(run.get('filter'))[:60]})")
    for side, ran in (("native", ran_n), ("margay", ran_m)):
        counts = {}
        for t in ran:
            counts[t[side]["verdict"]] = counts.get(t[side]["verdict"], 0) + 1
        lines.append(f"- {side} verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(
            counts.items(), key=lambda kv: -kv[1])))
    lines.append(f"- **run on both: {len(both)}; pass natively (pass or TCONF): {len(nok)}; "
                 f"of those pass on Margay: {len(mok)} ({pct})**\n")
    # Reasons overall.
    reasons = {}
    for t in nok:
        if not margay_ok(t):
            r = margay_reason(t)
            reasons.setdefault(r, []).append(t["name"])
    if reasons:
        lines.append("## Why tests that pass natively fail on Margay\n")
        lines.append("| reason | tests | examples |\n|---|---:|---|")
        for r, names in sorted(reasons.items(), key=lambda kv: -len(kv[1]))[:40]:
            lines.append(f"| {r.replace('|', '/')} | {len(names)} | {', '.join(names[:6])} |")
        lines.append("")
    gaps = {}
    for t in ran_m:
        for g in t["margay"].get("kmsg", {}).get("gap", []):
            gaps.setdefault(normalize(g), set()).add(t["name"])
    if gaps:
        lines.append("## Unsupported features the kernel logged (kmsg)\n")
        lines.append("| kmsg line | tests | examples |\n|---|---:|---|")
        for g, names in sorted(gaps.items(), key=lambda kv: -len(kv[1]))[:30]:
            lines.append(f"| {g.replace('|', '/')} | {len(names)} | {', '.join(sorted(names)[:6])} |")
        lines.append("")
    other = {}
    for t in ran_m:
        for g in t["margay"].get("kmsg", {}).get("other", []):
            other.setdefault(normalize(g), set()).add(t["name"])
    if other:
        lines.append("## Unclassified kmsg lines (review: informative or error?)\n")
        for g, names in sorted(other.items(), key=lambda kv: -len(kv[1]))[:20]:
            lines.append(f"- `{g}` ({len(names)}: {', '.join(sorted(names)[:4])})")
        lines.append("")
    lines.append("## Per family\n")
    lines.append("| family | tests | native pass | native TCONF | native other | Margay run | "
                 "Margay pass | Margay TCONF | ok / native ok | main Margay failure |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for fam in sorted(fams):
        ts = [t for _, t in fams[fam]]
        nv = [t["native"]["verdict"] for t in ts if "native" in t]
        mv = [t["margay"]["verdict"] for t in ts if "margay" in t]
        fb = [t for t in ts if "native" in t and "margay" in t and native_ok(t)]
        fm = [t for t in fb if margay_ok(t)]
        rs = {}
        for t in fb:
            if not margay_ok(t):
                r = margay_reason(t)
                rs[r] = rs.get(r, 0) + 1
        main = max(rs.items(), key=lambda kv: kv[1]) if rs else None
        mtxt = f"{main[0]} ({main[1]})".replace("|", "/") if main else ""
        lines.append(f"| {fam} | {len(ts)} | {nv.count('pass')} | {nv.count('tconf')} | "
                     f"{len(nv) - nv.count('pass') - nv.count('tconf')} | {len(mv)} | "
                     f"{mv.count('pass')} | {mv.count('tconf')} | {len(fm)}/{len(fb)} | {mtxt} |")
    lines.append("")
    with open(os.path.join(cfg.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_diff(cfg, results, prev_path):
    with open(prev_path) as f:
        prev = json.load(f)["tests"]
    cur = results["tests"]
    newly_pass, newly_fail, changed = [], [], []
    for name, t in sorted(cur.items()):
        p = prev.get(name)
        if not p:
            continue
        for side, ok in (("native", native_ok), ("margay", margay_ok)):
            if side not in t or side not in p:
                continue
            a, b = ok(p), ok(t)
            if not a and b:
                newly_pass.append(f"{name} ({side}: {p[side]['verdict']} -> {t[side]['verdict']})")
            elif a and not b:
                newly_fail.append(f"{name} ({side}: {p[side]['verdict']} -> {t[side]['verdict']})")
            elif p[side]["verdict"] != t[side]["verdict"]:
                changed.append(f"{name} ({side}: {p[side]['verdict']} -> {t[side]['verdict']})")
    out = [f"# LTP diff against {prev_path}\n"]
    for title, items in (("Newly passing", newly_pass), ("Newly failing", newly_fail),
                         ("Other verdict changes", changed)):
        out.append(f"## {title} ({len(items)})\n")
        out += [f"- {i}" for i in items] + [""]
    with open(os.path.join(cfg.out, "diff.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    return len(newly_fail)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ltp", required=True, help="LTP source tree (built if not yet)")
    ap.add_argument("--out", required=True, help="results directory (results.json, table.md, diff.md, logs/)")
    ap.add_argument("--margay", default=os.path.join(REPO, "target/release/margay"))
    ap.add_argument("--margay-args", default="", help="extra `margay run` options, e.g. '--mem 1G --cpus 2'")
    ap.add_argument("--exclude", default=os.path.join(HERE, "exclude.txt"))
    ap.add_argument("--runtest", default="runtest/syscalls", help="list, relative to the LTP tree")
    ap.add_argument("--filter", help="regex on test names (re.search)")
    ap.add_argument("--families", help="comma-separated families (directory names, e.g. mmap,fork)")
    ap.add_argument("--sample", type=int, default=1, help="keep every K-th test of each family")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--build-jobs", type=int, default=2)
    ap.add_argument("--no-build", action="store_true", help="the tree is built already: use it as it is")
    ap.add_argument("--native-timeout", type=float, default=30)
    ap.add_argument("--margay-timeout", type=float, default=60)
    ap.add_argument("--no-native", action="store_true")
    ap.add_argument("--no-margay", action="store_true")
    ap.add_argument("--prev", help="previous results.json to diff against")
    ap.add_argument("--resume", action="store_true", help="keep results already in OUT/results.json")
    ap.add_argument("--allow-unreviewed", action="store_true",
                    help="run tests whose source looks host-changing although exclude.txt does not list them")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the tests")
    ap.add_argument("--scratch", default=None, help="where the run's scratch directory (per-test TMPDIRs) is made")
    ap.add_argument("--exclusive", action="store_true",
                    help="nothing else uses /dev/shm or SysV IPC here: with --jobs 1, every new entry "
                         "during a test is its leftover (and is removed)")
    ap.add_argument("--list", action="store_true", help="list the selection and exclusions, run nothing")
    ap.add_argument("--report-only", action="store_true", help="rewrite table.md/diff.md from OUT/results.json")
    ap.add_argument("--merge", action="append", default=[],
                    help="with --report-only: merge this results.json's tests and sides into OUT's")
    cfg = ap.parse_args()
    cfg.ltp = os.path.abspath(cfg.ltp)
    cfg.out = os.path.abspath(cfg.out)
    cfg.margay = os.path.abspath(cfg.margay)
    cfg.margay_args = cfg.margay_args.split()
    os.makedirs(os.path.join(cfg.out, "logs"), exist_ok=True)
    resfile = os.path.join(cfg.out, "results.json")

    if cfg.report_only:
        results = {"meta": {}, "tests": {}, "skipped": {}}
        if os.path.exists(resfile):
            with open(resfile) as f:
                results = json.load(f)
        for other in cfg.merge:
            # Runs of the two sides made separately (e.g. at the same time
            # into two OUT directories) combine side by side.
            with open(other) as f:
                o = json.load(f)
            for name, t in o["tests"].items():
                cur = results["tests"].setdefault(name, {})
                for k, v in t.items():
                    cur.setdefault(k, v)
            for k, v in o.get("meta", {}).items():
                results["meta"].setdefault(k, v)
            for k, v in o.get("skipped", {}).items():
                results["skipped"].setdefault(k, v)
            results["meta"].setdefault("runs", []).append(
                dict(o.get("meta", {}), file=os.path.abspath(other)))
        with open(resfile, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
        write_reports(cfg, results, results["meta"])
        if cfg.prev:
            write_diff(cfg, results, cfg.prev)
        return 0

    if not os.path.isdir(cfg.ltp):
        sys.exit(f"{cfg.ltp}: no LTP tree (git clone https://github.com/linux-test-project/ltp)")
    if not cfg.no_build:
        build_ltp(cfg.ltp, cfg.build_jobs)

    bins = index_binaries(cfg.ltp)
    rules, allowed = load_exclusions(cfg.exclude)
    entries = parse_runtest(os.path.join(cfg.ltp, cfg.runtest))
    fam_filter = set(cfg.families.split(",")) if cfg.families else None
    rx = re.compile(cfg.filter) if cfg.filter else None
    selected, skipped = [], {}
    per_family = {}
    not_built = 0
    for t in entries:
        t["binary"] = bins.get(t["cmd"])
        t["family"] = family_of(t["name"], os.path.dirname(t["binary"]) if t["binary"] else None)
        if rx and not rx.search(t["name"]):
            continue
        if fam_filter and t["family"] not in fam_filter:
            continue
        why = excluded(t["name"], rules)
        if why:
            skipped[t["name"]] = "excluded: " + why
            continue
        if not t["binary"]:
            skipped[t["name"]] = "not built (no static binary)"
            not_built += 1
            continue
        risks = risky(t["binary"])
        if risks and not cfg.allow_unreviewed and not excluded(t["name"], allowed):
            skipped[t["name"]] = "UNREVIEWED, not run: " + "; ".join(risks)
            continue
        i = per_family.get(t["family"], 0)
        per_family[t["family"]] = i + 1
        if i % cfg.sample:
            continue
        selected.append(t)
    if cfg.list:
        for t in selected:
            print(f"run  {t['name']:24} {t['family']:18} {t['binary']} {' '.join(t['args'])}")
        for n, why in skipped.items():
            print(f"skip {n:24} {why}")
        print(f"{len(selected)} to run, {len(skipped)} skipped", file=sys.stderr)
        return 0
    if not cfg.no_margay and not os.access(cfg.margay, os.X_OK):
        sys.exit(f"{cfg.margay}: not built (cargo build --release), or pass --no-margay")
    for n, why in skipped.items():
        if why.startswith("UNREVIEWED"):
            log(f"ltp: {n}: {why} (add it to exclude.txt with a reason, or --allow-unreviewed)")

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ltp": cfg.ltp, "ltp_commit": git_commit(cfg.ltp), "margay": cfg.margay,
        "margay_commit": git_commit(REPO), "margay_args": cfg.margay_args,
        "native_timeout": cfg.native_timeout, "margay_timeout": cfg.margay_timeout,
        "jobs": cfg.jobs, "sample": cfg.sample, "filter": cfg.filter, "families": cfg.families,
        "entries": len(entries), "excluded": sum(1 for t in entries if excluded(t["name"], rules)),
        "selected": len(selected), "unreviewed": sum(1 for w in skipped.values() if w.startswith("UNREVIEWED")),
        "not_built": not_built, "uid": os.geteuid(),
    }
    results = {"meta": meta, "tests": {}, "skipped": skipped}
    if cfg.resume and os.path.exists(resfile):
        with open(resfile) as f:
            results["tests"] = json.load(f).get("tests", {})
    cfg.scratch = tempfile.mkdtemp(prefix="margay-ltp-", dir=cfg.scratch)
    os.chmod(cfg.scratch, 0o755)
    # A run stopped with SIGTERM or Ctrl-C still removes its scratch directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_all(cfg, selected, results, resfile, meta)
    finally:
        shutil.rmtree(cfg.scratch, ignore_errors=True)


def run_all(cfg, selected, results, resfile, meta):
    lock = threading.Lock()
    sides = [s for s, off in (("native", cfg.no_native), ("margay", cfg.no_margay)) if not off]
    meta["sides"] = sides
    serial = cfg.jobs == 1
    done = [0]
    t_start = time.monotonic()

    def save():
        meta["wall_seconds"] = round(time.monotonic() - t_start, 1)
        tmp = resfile + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
        os.replace(tmp, resfile)

    def work(t):
        rec = results["tests"].get(t["name"], {})
        rec.update({"name": t["name"], "family": t["family"], "cmd": [t["cmd"]] + t["args"]})
        for side in sides:
            if side in rec and cfg.resume:
                continue
            rec[side] = run_one(t, side, cfg, serial)
        with lock:
            results["tests"][t["name"]] = rec
            done[0] += 1
            summary = "  ".join(f"{s}={rec[s]['verdict']}({rec[s]['duration']:.1f}s)" for s in sides)
            log(f"[{done[0]}/{len(selected)}] {t['name']:24} {summary}")
            save()

    with concurrent.futures.ThreadPoolExecutor(max_workers=cfg.jobs) as ex:
        for f in [ex.submit(work, t) for t in selected]:
            f.result()
    save()
    write_reports(cfg, results, meta)
    if cfg.prev:
        write_diff(cfg, results, cfg.prev)
    log(f"ltp: results in {resfile}, {os.path.join(cfg.out, 'table.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
