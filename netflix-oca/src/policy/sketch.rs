//! A count-min sketch of access frequencies with 4-bit saturating counters and periodic
//! halving, as W-TinyLFU and Caffeine use it.

/// Four rows of saturating counters (at most 15); an estimate is the least of a key's four.
/// After `10 × width` increments every counter is halved, so old popularity fades.
#[derive(Debug, Clone)]
pub(crate) struct Sketch {
    table: Vec<u8>,
    mask: usize,
    additions: u64,
    period: u64,
}

const SEEDS: [u64; 4] = [
    0x97cb_3127_4ef9_8d1b,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
];

impl Sketch {
    /// A sketch for about `entries` distinct keys in cache.
    pub(crate) fn new(entries: usize) -> Self {
        let width = entries.max(16).next_power_of_two();
        Self {
            table: vec![0; width * 4],
            mask: width - 1,
            additions: 0,
            period: 10 * width as u64,
        }
    }

    pub(crate) fn width(&self) -> usize {
        self.mask + 1
    }

    fn slots(&self, key: u64) -> [usize; 4] {
        let width = self.mask + 1;
        let mut out = [0; 4];
        for (row, seed) in SEEDS.iter().enumerate() {
            let mut h = (key ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 31;
            h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 29;
            out[row] = row * width + (h as usize & self.mask);
        }
        out
    }

    /// Counts one access to `key`.
    pub(crate) fn increment(&mut self, key: u64) {
        let mut added = false;
        for s in self.slots(key) {
            if self.table[s] < 15 {
                self.table[s] += 1;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.period {
                for c in &mut self.table {
                    *c >>= 1;
                }
                self.additions /= 2;
            }
        }
    }

    /// The estimated access count of `key` (0 to 15).
    pub(crate) fn frequency(&self, key: u64) -> u8 {
        self.slots(key)
            .into_iter()
            .map(|s| self.table[s])
            .min()
            .unwrap_or(0)
    }
}
