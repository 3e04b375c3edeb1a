//! Randomness for salts, nonces and challenges (the OS generator).

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill(buf: &mut [u8]) {
    // getrandom fails only when the OS has no entropy source at all; there is
    // no safe fallback for salts and nonces, so that is fatal.
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

/// A random unsigned 64-bit number.
pub fn u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_le_bytes(b)
}
