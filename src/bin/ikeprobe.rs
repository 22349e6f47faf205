//! ikeprobe: negotiates one IKE SA and its first Child SA as initiator,
//! with a shared key, over UDP from this host, and prints what was agreed
//! on one line. For the interoperability tests of the IKEv2 core against
//! strongSwan until `iked` exists; not installed, and it installs no SA.
//!
//! ```text
//! ikeprobe LOCAL REMOTE LOCAL_NET REMOTE_NET IKE_ALGS CHILD_ALGS < key
//! ```
//!
//! `IKE_ALGS` is `cipher-group` with cipher `aes256` (AES-CBC-256 with
//! HMAC-SHA2-256-128), `aes256gcm` or `chacha20poly1305`, and group
//! `ecp256`, `ecp384`, `x25519` or `modp2048`; the PRF is HMAC-SHA2-256.
//! `CHILD_ALGS` is `aes128gcm`, `aes256gcm`, `aes128` (with
//! HMAC-SHA2-256-128) or `chacha20poly1305`. The shared key is read from
//! standard input, up to its end. Identities are the addresses. When the
//! responder reports a NAT, IKE_AUTH goes to port 4500 with the non-ESP
//! marker, as RFC 7296 §2.23 says.
//!
//! Exits 0 once both ends are authenticated and the Child SA is agreed,
//! 1 with the reason otherwise.

use ipsec_ike::exchange::handshake::{Config, Initiator, Next, Path};
use ipsec_ike::exchange::selectors::of_net;
use ipsec_ike::exchange::suite::{ChildOffer, Encr, IkeOffer};
use ipsec_ike::wire::{
    DhGroup, EncrId, EsnId, ExchangeType, Header, IdType, Identification, IntegId, PrfId,
    ProtocolId,
};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long to wait for each answer.
const WAIT: Duration = Duration::from_secs(5);

fn cipher(name: &str) -> Result<Encr, String> {
    Ok(match name {
        "aes128" => (EncrId::AES_CBC, Some(128)),
        "aes256" => (EncrId::AES_CBC, Some(256)),
        "aes128gcm" => (EncrId::AES_GCM_16, Some(128)),
        "aes256gcm" => (EncrId::AES_GCM_16, Some(256)),
        "chacha20poly1305" => (EncrId::CHACHA20_POLY1305, None),
        other => return Err(format!("unknown cipher {other}")),
    })
}

fn group(name: &str) -> Result<DhGroup, String> {
    Ok(match name {
        "ecp256" => DhGroup::ECP_256,
        "ecp384" => DhGroup::ECP_384,
        "x25519" => DhGroup::CURVE25519,
        "modp2048" => DhGroup::MODP_2048,
        other => return Err(format!("unknown group {other}")),
    })
}

fn id(ip: IpAddr) -> Identification {
    match ip {
        IpAddr::V4(v) => Identification {
            id_type: IdType::IPV4_ADDR,
            data: v.octets().to_vec(),
        },
        IpAddr::V6(v) => Identification {
            id_type: IdType::IPV6_ADDR,
            data: v.octets().to_vec(),
        },
    }
}

fn net(s: &str) -> Result<ipsec_ike::wire::TrafficSelector, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or(format!("{s}: not ADDRESS/PREFIX"))?;
    let addr: IpAddr = addr.parse().map_err(|_| format!("{s}: bad address"))?;
    let prefix: u8 = prefix.parse().map_err(|_| format!("{s}: bad prefix"))?;
    Ok(of_net(addr, prefix, 0, 0))
}

fn config(args: &[String], psk: Zeroizing<Vec<u8>>) -> Result<(Config, Path), String> {
    let [local, remote, mine, theirs, ike, child] = args else {
        return Err(
            "usage: ikeprobe LOCAL REMOTE LOCAL_NET REMOTE_NET IKE_ALGS CHILD_ALGS < key".into(),
        );
    };
    let local: IpAddr = local.parse().map_err(|_| "LOCAL: not an address")?;
    let remote: IpAddr = remote.parse().map_err(|_| "REMOTE: not an address")?;
    let (ike_cipher, ike_group) = ike.split_once('-').ok_or("IKE_ALGS: cipher-group")?;
    let child = cipher(child)?;
    let config = Config {
        ike: IkeOffer {
            encr: vec![cipher(ike_cipher)?],
            prf: vec![PrfId::HMAC_SHA2_256],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![group(ike_group)?],
        },
        child: ChildOffer {
            protocol: ProtocolId::ESP,
            encr: vec![child],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![],
            esn: vec![EsnId::NO],
        },
        local_id: id(local),
        remote_id: Some(id(remote)),
        credentials: ipsec_ike::exchange::auth::Credentials::Psk(psk),
        unix: 0,
        ts_local: vec![net(mine)?],
        ts_remote: vec![net(theirs)?],
        transport: false,
    };
    let path = Path {
        local: SocketAddr::new(local, 500),
        remote: SocketAddr::new(remote, 500),
    };
    Ok((config, path))
}

fn probe(args: &[String]) -> Result<String, String> {
    let mut key = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut key)
        .map_err(|e| format!("reading the key: {e}"))?;
    let (config, path) = config(args, key)?;
    let bind = |port| {
        let s = UdpSocket::bind(SocketAddr::new(path.local.ip(), port))
            .map_err(|e| format!("UDP port {port}: {e}"))?;
        s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
        Ok::<_, String>(s)
    };
    let (ike, natt) = (bind(500)?, bind(4500)?);
    let mut rng = rand_core::OsRng;
    let mut spi = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rng, &mut spi);
    let (mut initiator, request) =
        Initiator::start(config, path, u64::from_be_bytes(spi), &mut rng)
            .map_err(|e| format!("{e:?}"))?;
    ike.send_to(&request, path.remote)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    // The child SPI is only announced: nothing is installed.
    let child_spi = 0x0100_0001;
    let auth = loop {
        let (n, _) = ike
            .recv_from(&mut buf)
            .map_err(|e| format!("waiting for IKE_SA_INIT: {e}"))?;
        match initiator.receive(&buf[..n], child_spi, &mut rng) {
            Ok(Next::Send(m))
                if Header::peek(&m).is_ok_and(|h| h.exchange == ExchangeType::IKE_SA_INIT) =>
            {
                ike.send_to(&m, path.remote).map_err(|e| e.to_string())?;
            }
            Ok(Next::Send(m)) => break m,
            Ok(Next::Established(_)) => return Err("up without IKE_AUTH".into()),
            Err(e) => return Err(format!("IKE_SA_INIT: {e:?}")),
        }
    };
    // Over port 4500, behind the non-ESP marker, whether or not there is
    // a NAT (RFC 7296 allows it, and a NAT-faking peer expects it).
    let mut marked = vec![0u8; 4];
    marked.extend_from_slice(&auth);
    let remote_natt = SocketAddr::new(path.remote.ip(), 4500);
    natt.send_to(&marked, remote_natt)
        .map_err(|e| e.to_string())?;
    let (n, _) = natt
        .recv_from(&mut buf)
        .map_err(|e| format!("waiting for IKE_AUTH: {e}"))?;
    let answer = buf[..n]
        .strip_prefix(&[0u8; 4][..])
        .ok_or("IKE_AUTH answer without the non-ESP marker")?;
    match initiator.receive(answer, child_spi, &mut rng) {
        Ok(Next::Established(e)) => Ok(format!(
            "established ike {:?} {:?} {:?} child {:?} spi {:#010x} nat {}",
            e.suite.protection.cipher,
            e.suite.prf,
            e.suite.group,
            e.child.suite.encr.map(|(id, bits)| (id.to_string(), bits)),
            e.child.spi_out,
            e.nat.is_some_and(|n| n.any()),
        )),
        Ok(Next::Send(_)) => Err("another request after IKE_AUTH".into()),
        Err(e) => Err(format!("IKE_AUTH: {e:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match probe(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("ikeprobe: {why}");
            ExitCode::FAILURE
        }
    }
}
