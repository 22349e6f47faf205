//! NAT traversal end to end: gateway A sits behind a namespace that
//! rewrites its source address (nftables masquerade), so ESP reaches B in
//! UDP on port 4500 (RFC 3948) from the NAT's address, and B answers
//! through the NAT's port mapping.

use crate::datapath::Lab;
use crate::interop::Summary;

const KEYS_AB: &str = "authkey 0x1111111111111111111111111111111111111111111111111111111111111111:\
0x2222222222222222222222222222222222222222222222222222222222222222 \
enckey 0x33333333333333333333333333333333:0x44444444444444444444444444444444";
const KEYS_BA: &str = "authkey 0x2222222222222222222222222222222222222222222222222222222222222222:\
0x1111111111111111111111111111111111111111111111111111111111111111 \
enckey 0x44444444444444444444444444444444:0x33333333333333333333333333333333";

#[test]
fn esp_in_udp_through_a_nat() {
    let Some(mut lab) = Lab::new("esp_in_udp_through_a_nat") else {
        return;
    };
    let a = lab.namespace("a");
    let nat = lab.namespace("n");
    let b = lab.namespace("b");
    lab.link(
        (&a, "wa", &["192.168.1.2/24"]),
        (&nat, "in", &["192.168.1.1/24"]),
    );
    lab.link(
        (&nat, "out", &["198.51.100.1/24"]),
        (&b, "wb", &["198.51.100.2/24"]),
    );
    lab.exec(&a, &["ip", "route", "add", "default", "via", "192.168.1.1"]);
    // B knows nothing of A's private network: only the NAT's address.
    let masquerade = "table ip nat {\n\
        chain post { type nat hook postrouting priority 100; oifname \"out\" masquerade; }\n\
        }\n";
    let rules = lab.dir.join("nat.nft");
    std::fs::write(&rules, masquerade).unwrap();
    lab.exec(&nat, &["nft", "-f", rules.to_str().unwrap()]);
    for (ns, host) in [(&a, "10.1.0.1/32"), (&b, "10.2.0.1/32")] {
        lab.exec(ns, &["ip", "addr", "add", host, "dev", "lo"]);
    }

    let sock_a = lab.daemon(&a);
    let sock_b = lab.daemon(&b);
    let daemon_b = lab.last_spawned();
    lab.load(
        &a,
        &sock_a,
        &format!(
            "flow esp from 10.1.0.1 to 10.2.0.1 peer 198.51.100.2\n\
             esp tunnel from 192.168.1.2 to 198.51.100.2 spi 0x1000:0x1001 udpencap \
             auth hmac-sha2-256 enc aes {KEYS_AB}\n"
        ),
    );
    // B's peer is the address the NAT shows, as IKE would have found.
    lab.load(
        &b,
        &sock_b,
        &format!(
            "flow esp from 10.2.0.1 to 10.1.0.1 peer 198.51.100.1\n\
             esp tunnel from 198.51.100.2 to 198.51.100.1 spi 0x1001:0x1000 udpencap \
             auth hmac-sha2-256 enc aes {KEYS_BA}\n"
        ),
    );

    let (dump, file) = lab.capture(&b, "wb");
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    lab.transfer(&a, &b, "10.1.0.1", "10.2.0.1");
    lab.stop(dump);

    // The transfer crossed as ESP in UDP, as B's own count says: the
    // capture may not keep every run of up to 64 KiB, and iperf3 -n ends
    // once the client has written its 2 MiB, some of it still in flight,
    // so a megabyte or so is what reliably crosses.
    assert!(lab.count(&file, "udp port 4500") > 0, "no ESP in UDP");
    lab.stop(daemon_b);
    let log = lab.log(&format!("{b}-ipsecd.log"));
    let summary = Summary::of(&log).unwrap_or_else(|| panic!("no summary in:\n{log}"));
    assert!(
        summary.protected_in > 500,
        "B opened {} packets",
        summary.protected_in
    );
    assert_eq!(lab.count(&file, "esp"), 0, "bare ESP cannot cross this NAT");
    assert_eq!(
        lab.count(
            &file,
            "tcp or icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply"
        ),
        0,
        "cleartext on the wire"
    );
    assert_eq!(
        lab.count(&file, "src host 192.168.1.2 or dst host 192.168.1.2"),
        0,
        "the private address never reaches B"
    );
}
