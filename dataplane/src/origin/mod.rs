//! Origins: ordered rules (linear-time regex, named captures) → ordered sources (local, http),
//! each behind a circuit breaker with bounded retries. OWNER: origin helper.
