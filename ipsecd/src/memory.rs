//! Handing memory back to the system after the tables shrank. The maps
//! give back their own ([`ipsec_engine::sad::Sad`] compacts itself), but the
//! many small blocks ten thousand SAs leave behind stay in the C
//! allocator's arenas, where a daemon that lives for months would keep
//! them; `malloc_trim` returns the free pages among them.

/// Watches the size of the SAD, once a second, and trims after it fell.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// The most SAs since the last trim.
    high: usize,
}

/// How many SAs must have gone before a trim is worth its cost.
const SHRINK: usize = 64;

impl Trimmer {
    /// Notes the SAD's size now; trims if it fell far enough.
    pub fn observe(&mut self, sas: usize) {
        self.high = self.high.max(sas);
        if sas + SHRINK <= self.high {
            // SAFETY: malloc_trim only releases free memory of the C
            // allocator; it touches nothing the program holds.
            unsafe { libc::malloc_trim(0) };
            self.high = sas;
        }
    }
}
