//! The memory the lab forks with: an anonymous mapping of 4 KiB pages (2 MiB ones with
//! `--huge`), the kind malloc gives for large blocks, every page written before forking.

use nix::sys::mman::{
    madvise, mmap_anonymous, munmap, MapFlags, MmapAdvise, ProtFlags,
};
use proclab::OrDie;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

pub const PAGE: usize = 4096;

pub struct Region {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Region {
    /// A fresh private mapping of `len` bytes; `shared` (tests only) makes it MAP_SHARED,
    /// which fork does not copy on write.
    pub fn new(len: usize, huge: bool, shared: bool) -> Region {
        let nz = NonZeroUsize::new(len).expect("non-zero size");
        let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // MAP_PRIVATE: after fork, both sides share the pages copy-on-write.
        let flags =
            if shared { MapFlags::MAP_SHARED } else { MapFlags::MAP_PRIVATE };
        // SAFETY: a fresh anonymous mapping, touching no existing memory.
        let ptr = unsafe { mmap_anonymous(None, nz, rw, flags) }.or_die("mmap");
        let advice = if huge {
            MmapAdvise::MADV_HUGEPAGE
        } else {
            MmapAdvise::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on our own fresh mapping.
        unsafe { madvise(ptr, len, advice) }.or_die("madvise");
        Region { ptr, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Where it starts: the line of /proc/PID/smaps that describes it begins so.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Write `value` into the first byte of page `p` (async-signal-safe: a forked child
    /// may call it).
    pub fn write_page(&self, p: usize, value: u8) {
        assert!(p * PAGE < self.len, "page {p} is in the region");
        let at = self.ptr.as_ptr().cast::<u8>();
        // SAFETY: in bounds (asserted above); a byte of our own mapping.
        unsafe { at.add(p * PAGE).write_volatile(value) }
    }

    /// Write `value` into every page, so that each one is really allocated and has a
    /// page-table entry (a fresh mapping reads as zeros from one shared zero page).
    pub fn touch(&self, value: u8) {
        (0..self.len / PAGE).for_each(|p| self.write_page(p, value));
    }

    /// True if the first `pages` pages still hold `value`.
    pub fn holds(&self, pages: usize, value: u8) -> bool {
        (0..pages.min(self.len / PAGE)).all(|p| self.read_page(p) == value)
    }

    fn read_page(&self, p: usize) -> u8 {
        assert!(p * PAGE < self.len, "page {p} is in the region");
        let at = self.ptr.as_ptr().cast::<u8>();
        // SAFETY: in bounds (asserted above); a byte of our own mapping.
        unsafe { at.add(p * PAGE).read_volatile() }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}
