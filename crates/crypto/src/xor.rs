//! 2-of-2 XOR secret sharing: `k = t1 ⊕ t2`, t1 and t2 uniform. Information-theoretically hiding.
use crate::{CryptoError, Key256};

/// Split `k` into `(t1, t2)` with `t1` fresh uniform and `t2 = k ⊕ t1`.
pub fn split(k: &Key256) -> Result<(Key256, Key256), CryptoError> { todo!() }
/// Recombine: `t1 ⊕ t2`. Constant time.
pub fn combine(t1: &Key256, t2: &Key256) -> Key256 { todo!() }
