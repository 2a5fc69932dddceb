//! The network of part 6, made with `ip` (iproute2): five named network namespaces (a
//! switch `lan` with a bridge, hosts `h1` and `h2`, the balancer `lb`, the client `cl`),
//! each host joined to the bridge by a veth pair created directly inside the two
//! namespaces, with link-local addresses (169.254.13.0/24) that exist only there.
//! Nothing is created in the lab's own namespace. Removed by `janitor::sweep`.

use crate::janitor::{prefix, NETNS_DIR};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The namespaces and the address of each (the switch has none).
pub const ROLES: [(&str, &str); 5] = [
    ("lan", ""),
    ("h1", "169.254.13.1"),
    ("h2", "169.254.13.2"),
    ("lb", "169.254.13.10"),
    ("cl", "169.254.13.20"),
];

/// One namespace: its role, its name under /run/netns, an open descriptor (for setns),
/// its inode (what /proc/PID/ns/net names), its address.
pub struct Ns {
    pub role: &'static str,
    pub name: String,
    pub addr: &'static str,
    pub fd: OwnedFd,
    pub inode: u64,
}

/// The whole network.
pub struct Net(pub Vec<Ns>);

impl Net {
    pub fn ns(&self, role: &str) -> &Ns {
        self.0.iter().find(|n| n.role == role).expect("a namespace of ROLES")
    }
}

/// What part 6 needs and this machine lacks; empty when it can run.
pub fn missing() -> Vec<&'static str> {
    let caps = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = caps.lines().find_map(|l| l.strip_prefix("CapEff:"));
    let eff = eff.and_then(|c| u64::from_str_radix(c.trim(), 16).ok()).unwrap_or(0);
    let mut out = Vec::new();
    if eff & (1 << 12) == 0 || eff & (1 << 21) == 0 {
        out.push("root for network namespaces (CAP_NET_ADMIN, CAP_SYS_ADMIN: run it with sudo)");
    }
    if ip_bin().is_none() {
        out.push("ip (apt-get install -y iproute2)");
    }
    if crate::nginx::bin().is_none() {
        out.push("nginx (apt-get install -y nginx)");
    }
    out
}

/// The `ip` program, if iproute2 is installed.
pub fn ip_bin() -> Option<PathBuf> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .map(PathBuf::from)
        .into_iter()
        .find(|p| p.is_file())
}

/// Run `ip [-n NS] -batch -` with `script` on its stdin; it dies with the lab.
fn ip(ns: Option<&str>, script: &str) -> Result<(), String> {
    let mut cmd = Command::new(ip_bin().ok_or("no ip")?);
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    };
    let mut child = cmd.spawn().map_err(|e| format!("ip: {e}"))?;
    let _ = child.stdin.take().map(|mut i| i.write_all(script.as_bytes()));
    let out = child.wait_with_output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// Make the network of the lab with pid `lab`. On an error (ip's own message), what
/// was made is left for `janitor::sweep`.
pub fn create(lab: i32) -> Result<Net, String> {
    let name = |role: &str| format!("{}{role}", prefix(lab));
    let ends = || ROLES.iter().filter(|(_, a)| !a.is_empty());
    // ANCHOR: create
    // Run in the lab's namespace, but makes each device inside another one.
    let mut root = String::new();
    for (role, _) in ROLES {
        root += &format!("netns add {}\n", name(role));
    }
    for (role, _) in ends() {
        let (host, lan) = (name(role), name("lan"));
        root += &format!(
            "link add eth0 netns {host} type veth peer name {role} netns {lan}\n"
        );
    }
    ip(None, &root)?;
    let mut lan = String::from("link add br0 type bridge\nlink set br0 up\n");
    for (role, _) in ends() {
        lan += &format!("link set {role} master br0\nlink set {role} up\n");
    }
    ip(Some(&name("lan")), &lan)?;
    for (role, addr) in ends() {
        let up = format!(
            "link set lo up\naddr add {addr}/24 dev eth0\nlink set eth0 up\n"
        );
        ip(Some(&name(role)), &up)?;
    }
    // ANCHOR_END: create
    let mut out = Vec::new();
    for (role, addr) in ROLES {
        let path = format!("{NETNS_DIR}/{}", name(role));
        let f =
            std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        let inode = f.metadata().map_err(|e| format!("{e}"))?.ino();
        out.push(Ns { role, name: name(role), addr, fd: f.into(), inode });
    }
    Ok(Net(out))
}

/// The interfaces of the lab's own network namespace (/proc/net/dev).
pub fn own_interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let mut v: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    v.sort();
    v
}

/// True when the socket table of `pid`'s network namespace (/proc/PID/net/tcp) has a
/// socket listening on `port` (on any address, or on `addr`).
pub fn listens(pid: i32, addr: [u8; 4], port: u16) -> bool {
    let want = format!("{:08X}:{port:04X}", u32::from_ne_bytes(addr));
    let any = format!("00000000:{port:04X}");
    crate::seen::listening(pid).iter().any(|(a, _)| *a == want || *a == any)
}

/// The four octets of a dotted address.
pub fn octets(addr: &str) -> [u8; 4] {
    addr.parse::<std::net::Ipv4Addr>().map_or([0; 4], |a| a.octets())
}
