//! Role-message parser and role exchange on arbitrary input: never panics, every accepted
//! message is the unique encoding of what it parsed to, its header agrees with it, and no role
//! verifies against secrets the fuzzer does not know (a key role, a password role, and an
//! X.509 certificate role whose CA key the fuzzer never sees: chains and signatures it forges
//! go through rustls-webpki's path validation).
#![no_main]

use std::sync::{Arc, OnceLock};

use daas_channel::wire::{HEADER_LEN, RoleMessage, parse_header};
use daas_channel::{
    Exporters, OfferSent, Role, RoleConfig, RoleKey, RoleName, RolePassword, RoleSecret, Side,
    X509Role,
};
use daas_identity::{TrustDomain, TrustDomainCa};
use libfuzzer_sys::fuzz_target;

fn config() -> Arc<RoleConfig> {
    static CONFIG: OnceLock<Arc<RoleConfig>> = OnceLock::new();
    CONFIG.get_or_init(build_config).clone()
}

fn build_config() -> Arc<RoleConfig> {
    let name = |s: &str| RoleName::new(s).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let ca = TrustDomainCa::new(
        TrustDomain::new("fuzz.example").unwrap(),
        time::Duration::days(1),
        now,
    )
    .unwrap();
    let x509 = X509Role::verifier(ca.bundle(now), None).unwrap();
    let roles = vec![
        Role::new(
            name("payment"),
            RoleSecret::Key(RoleKey::new(&[0x42; 32]).unwrap()),
        ),
        Role::new(
            name("user-info"),
            RoleSecret::Password(RolePassword::new(b"pw").unwrap()),
        ),
        Role::new(name("approval"), RoleSecret::X509(x509)).with_prove(false),
    ];
    Arc::new(RoleConfig::new(roles, false).unwrap())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = RoleMessage::parse(data) {
        assert_eq!(m.encode(), data);
        let header: [u8; HEADER_LEN] = data[..HEADER_LEN].try_into().unwrap();
        let (ty, total) = parse_header(&header).unwrap();
        assert_eq!(ty, m.message_type());
        assert_eq!(total, data.len());
    }

    // The first byte picks the side, the rest splits into the peer's offer and proof.
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let side = if first & 1 == 0 { Side::Client } else { Side::Server };
    let split = usize::from(first >> 1).min(rest.len());
    let (offer, proof) = rest.split_at(split);
    let Ok((state, _)) = OfferSent::start(config(), side, Exporters::new([1; 32], [2; 32]), |_| true)
    else {
        return;
    };
    let Ok((state, _)) = state.receive_offer(offer) else {
        return;
    };
    let outcome = state.receive_proof(proof);
    assert!(outcome.finish().is_err(), "a role verified without its secret");
});
