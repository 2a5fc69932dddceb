//! Plumbing: the lines of `ls -l /proc/self/fd`, parsed into descriptors.

/// One line of the listing, as a fact.
#[derive(serde::Serialize)]
pub struct Fd<'a> {
    pub fd: i32,
    pub target: &'a str,
}

/// (fd, target) pairs from `ls -l /proc/self/fd` lines like `... 4 -> /dev/null`.
pub fn parse_fd_listing(text: &str) -> Vec<(i32, String)> {
    text.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_fd_listing_gives_each_descriptor_and_its_target() {
        let text = "total 0\n\
            lr-x------ 1 root root 64 Nov 22 18:04 0 -> /dev/null\n\
            l-wx------ 1 root root 64 Nov 22 18:04 1 -> pipe:[9477379]\n\
            lr-x------ 1 root root 64 Nov 22 18:04 3 -> /proc/16325/fd\n";
        let fds = super::parse_fd_listing(text);
        assert_eq!(fds.len(), 3, "the `total` line is not a descriptor");
        assert_eq!(fds[0], (0, "/dev/null".to_string()));
        assert_eq!(fds[1], (1, "pipe:[9477379]".to_string()));
        assert_eq!(fds[2], (3, "/proc/16325/fd".to_string()));
    }
}
