//! Captures of what crosses the enc interface, in the classic pcap format
//! with OpenBSD's enc link type, so that `tcpdump -r` shows the SPI and
//! the protection beside each packet as it does on OpenBSD's `enc0`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// pcap `LINKTYPE_ENC`: a 12-byte header (the address family as OpenBSD
/// numbers it, host byte order; the SPI as stored, network order; the
/// flags, host byte order), then the IP packet.
pub const LINKTYPE_ENC: u32 = 109;
/// The enc header's flags, as the engine sets them on its taps.
pub use ipsec_engine::engine::datapath::{ENC_AUTH, ENC_CONF};
/// OpenBSD's `AF_INET`, for the enc header's address family.
pub const ENC_AF_INET: u32 = 2;
/// OpenBSD's `AF_INET6` (Linux numbers it 10), for the enc header.
pub const ENC_AF_INET6: u32 = 24;

/// The length of the enc header in front of each packet.
const ENC_HEADER: usize = 12;
/// The snapshot length in the file header: the longest record kept whole.
const SNAPLEN: u32 = 65535;

/// An open capture file.
#[derive(Debug)]
pub struct Capture {
    out: BufWriter<File>,
}

impl Capture {
    /// Creates (truncates) the file, mode 0600 — the packets are
    /// cleartext — and writes the classic pcap global header: magic
    /// 0xa1b2c3d4 in host order (readers tell the byte order from it),
    /// version 2.4, snaplen 65535, link type 109.
    pub fn create(path: &Path) -> io::Result<Capture> {
        // A new file, never one that is there: the capture holds traffic
        // others must not read.
        let file = crate::private::replace(path, |_| Ok(()))?;
        let mut out = BufWriter::new(file);
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes());
        header.extend_from_slice(&4u16.to_ne_bytes());
        header.extend_from_slice(&0i32.to_ne_bytes()); // thiszone: UTC
        header.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
        header.extend_from_slice(&SNAPLEN.to_ne_bytes());
        header.extend_from_slice(&LINKTYPE_ENC.to_ne_bytes());
        out.write_all(&header)?;
        Ok(Capture { out })
    }

    /// One record: `time` since the epoch (microseconds), the enc header
    /// from `af` ([`ENC_AF_INET`] or [`ENC_AF_INET6`]), `spi` (a host
    /// value, written big-endian as the SPI appears on the wire) and
    /// `flags` ([`ENC_CONF`], [`ENC_AUTH`]), then `packet`. A record
    /// longer than the snapshot length is cut to it, its original length
    /// kept, as pcap has it.
    pub fn write(
        &mut self,
        time: Duration,
        af: u32,
        spi: u32,
        flags: u32,
        packet: &[u8],
    ) -> io::Result<()> {
        let original = ENC_HEADER + packet.len();
        let kept = original.min(SNAPLEN as usize);
        let mut record = [0u8; 16 + ENC_HEADER];
        // pcap's seconds are 32 bits: good until 2106.
        record[0..4].copy_from_slice(&(time.as_secs() as u32).to_ne_bytes());
        record[4..8].copy_from_slice(&time.subsec_micros().to_ne_bytes());
        record[8..12].copy_from_slice(&(kept as u32).to_ne_bytes());
        record[12..16].copy_from_slice(&u32::try_from(original).unwrap_or(u32::MAX).to_ne_bytes());
        record[16..20].copy_from_slice(&af.to_ne_bytes());
        record[20..24].copy_from_slice(&spi.to_be_bytes());
        record[24..28].copy_from_slice(&flags.to_ne_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(&packet[..kept - ENC_HEADER])
    }

    /// Writes what is buffered; the caller does so once per poll round.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str) -> TempFile {
            let name = format!("ipsecd-pcap-{tag}-{}.pcap", std::process::id());
            let path = std::env::temp_dir().join(name);
            let _ = std::fs::remove_file(&path);
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn two_records_read_back() {
        let file = TempFile::new("two");
        std::fs::write(&file.0, vec![0xee; 1000]).unwrap();
        std::fs::set_permissions(&file.0, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let first = [
            0x45u8, 0, 0, 20, 1, 2, 3, 4, 64, 50, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let second = vec![0x60u8; 41];
        {
            let mut capture = Capture::create(&file.0).unwrap();
            capture
                .write(
                    Duration::new(1_700_000_000, 123_456_789),
                    ENC_AF_INET,
                    0x1234_5678,
                    ENC_CONF | ENC_AUTH,
                    &first,
                )
                .unwrap();
            capture
                .write(
                    Duration::new(5, 999),
                    ENC_AF_INET6,
                    0xdead_beef,
                    ENC_AUTH,
                    &second,
                )
                .unwrap();
            capture.flush().unwrap();
        }
        let meta = std::fs::metadata(&file.0).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let bytes = std::fs::read(&file.0).unwrap();
        assert_eq!(
            bytes.len(),
            24 + (16 + 12 + 20) + (16 + 12 + 41),
            "truncated, not appended"
        );

        // The global header.
        assert_eq!(u32_at(&bytes, 0), 0xa1b2_c3d4);
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 2);
        assert_eq!(u16::from_ne_bytes([bytes[6], bytes[7]]), 4);
        assert_eq!(u32_at(&bytes, 8), 0);
        assert_eq!(u32_at(&bytes, 12), 0);
        assert_eq!(u32_at(&bytes, 16), 65535);
        assert_eq!(u32_at(&bytes, 20), 109);

        // The first record.
        let r = &bytes[24..];
        assert_eq!(u32_at(r, 0), 1_700_000_000);
        assert_eq!(u32_at(r, 4), 123_456);
        assert_eq!(u32_at(r, 8), 32);
        assert_eq!(u32_at(r, 12), 32);
        assert_eq!(u32_at(r, 16), 2);
        assert_eq!(&r[20..24], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(u32_at(r, 24), 0x0c00);
        assert_eq!(&r[28..48], &first);

        // The second.
        let r = &r[48..];
        assert_eq!(u32_at(r, 0), 5);
        assert_eq!(u32_at(r, 4), 0);
        assert_eq!(u32_at(r, 8), 53);
        assert_eq!(u32_at(r, 12), 53);
        assert_eq!(u32_at(r, 16), 24);
        assert_eq!(&r[20..24], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(u32_at(r, 24), 0x0800);
        assert_eq!(&r[28..], &second[..]);
    }

    #[test]
    fn records_longer_than_the_snaplen_are_cut() {
        let file = TempFile::new("long");
        let packet = vec![7u8; 65535];
        {
            let mut capture = Capture::create(&file.0).unwrap();
            capture
                .write(Duration::ZERO, ENC_AF_INET, 1, ENC_AUTH, &packet)
                .unwrap();
        } // BufWriter flushes on drop.
        let bytes = std::fs::read(&file.0).unwrap();
        let r = &bytes[24..];
        assert_eq!(u32_at(r, 8), 65535);
        assert_eq!(u32_at(r, 12), 65535 + 12);
        assert_eq!(r.len(), 16 + 65535);
    }
}
