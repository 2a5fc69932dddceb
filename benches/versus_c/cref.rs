//! The C reference, `benches/c/refbench.c`, built with the system C compiler (`cc`) on
//! every run: as a shared library loaded into this process (the C side) and as a
//! program of its own (the "C own" side). With no compiler there is no C side; nothing
//! measured earlier is ever reused.

use crate::{median, Sample};
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SOURCE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/benches/c/refbench.c");

type RoundFn = unsafe extern "C" fn(*const c_char, c_int, c_int, *mut u64) -> c_int;

pub struct CRef {
    round: RoundFn,
    pub exe: PathBuf,
    /// The two build commands and `cc --version`'s first line, for the record.
    pub commands: [String; 2],
    pub compiler: String,
}

/// Where the builds go: beside this bench's executable (target/release/refbench/).
fn build_dir() -> PathBuf {
    let me = std::env::current_exe().expect("current_exe");
    let profile = me.parent().and_then(Path::parent).expect("target/PROFILE/deps");
    profile.join("refbench")
}

fn cc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("cc")
        .args(args)
        .output()
        .map_err(|e| format!("no C compiler: `cc` cannot run ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "cc {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl CRef {
    /// Build (unless `reuse` and the builds are newer than the source: a side run by
    /// `--why` uses what its parent run has just built) and load the C reference.
    pub fn build(reuse: bool) -> Result<CRef, String> {
        let dir = build_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let (lib, exe) = (dir.join("librefbench.so"), dir.join("refbench"));
        let (lib_s, exe_s) = (lib.display().to_string(), exe.display().to_string());
        let flags = ["-O2", "-pthread", "-Wall", "-Wextra"];
        let lib_args =
            [&flags[..], &["-shared", "-fPIC", SOURCE, "-o", &lib_s]].concat();
        let exe_args = [&flags[..], &[SOURCE, "-o", &exe_s]].concat();
        let fresh = |p: &Path| {
            let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            matches!((m(p), m(Path::new(SOURCE))), (Some(b), Some(s)) if b > s)
        };
        if !(reuse && fresh(&lib) && fresh(&exe)) {
            cc(&lib_args)?;
            cc(&exe_args)?;
        }
        let compiler = Command::new("cc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_default();
        let path = CString::new(lib_s.as_str()).expect("no NUL in a path");
        // SAFETY: dlopen of the library just built; it has no constructors.
        let handle = unsafe {
            libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL)
        };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated message after a failed dlopen.
            let why = unsafe { CStr::from_ptr(libc::dlerror()) };
            return Err(format!("dlopen {lib_s}: {}", why.to_string_lossy()));
        }
        // SAFETY: a symbol name, NUL-terminated; the handle stays open for the process.
        let sym = unsafe { libc::dlsym(handle, c"refbench_round".as_ptr()) };
        if sym.is_null() {
            return Err(format!("{lib_s} has no refbench_round"));
        }
        // Paths from the repository's root: the record is the same on every machine.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
        let show = |a: &[&str]| format!("cc {}", a.join(" ").replace(root, ""));
        Ok(CRef {
            // SAFETY: refbench_round has this signature (benches/c/refbench.c).
            round: unsafe {
                std::mem::transmute::<*mut libc::c_void, RoundFn>(sym)
            },
            exe,
            commands: [show(&lib_args), show(&exe_args)],
            compiler,
        })
    }

    /// One round of C figure `name` in this process.
    pub fn round(&self, name: &str, warm: usize, out: &mut [u64]) {
        let n = CString::new(name).expect("no NUL in a name");
        // SAFETY: out has room for out.len() times; the C code writes exactly that many.
        let r = unsafe {
            (self.round)(
                n.as_ptr(),
                warm as c_int,
                out.len() as c_int,
                out.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "refbench_round({name}): no such C figure");
    }

    /// One round of C figure `name` in a process of its own: `refbench --round`.
    pub fn own_round(
        &self,
        name: &str,
        warm: usize,
        iters: usize,
    ) -> Option<Sample> {
        let out = Command::new(&self.exe)
            .args(["--round", name, &warm.to_string(), &iters.to_string()])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "versus_c: {} --round {name} failed: {}",
                self.exe.display(),
                out.status
            );
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let facts = lines.next()?.strip_prefix("facts ")?;
        let fact = |key: &str| -> Option<u64> {
            facts
                .split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                .parse()
                .ok()
        };
        let mut times: Vec<u64> = lines.filter_map(|l| l.parse().ok()).collect();
        if times.len() != iters {
            return None;
        }
        let n = (warm + iters) as f64;
        Some(Sample {
            ns: median(&mut times),
            rss_kib: fact("rss_kib")?,
            vmas: fact("vmas")?,
            faults: fact("faults")? as f64 / n,
            switches: fact("switches")? as f64 / n,
            preempted: fact("preempted")? as f64,
        })
    }
}
