//! Known-answer tests from the RFCs and NIST, then the behaviour ESP and
//! AH rely on (tamper rejection, key checks, no keys in Debug).
//!
//! Key material is laid out as PF_KEY carries it: for CTR, GCM, GMAC and
//! ChaCha20-Poly1305 the published 12- or 16-byte nonce or counter block
//! splits into the 4-byte salt (appended to the key) and the 8-byte IV.

use pfkey::{AuthAlg, EncAlg};

use super::{BadIcv, Cipher, KeyError, Mac};

/// Bytes from hex, ignoring whitespace so vectors can be laid out as the
/// documents print them.
fn h(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Encrypts `pt` and decrypts the result with a plain cipher.
fn plain_kat(alg: EncAlg, key: &[u8], iv: &[u8], pt: &[u8], ct: &[u8]) {
    let cipher = Cipher::new(alg, key).unwrap();
    let mut buf = pt.to_vec();
    cipher.encrypt(iv, &mut buf);
    assert_eq!(buf, ct, "{cipher:?} encrypt");
    cipher.decrypt(iv, &mut buf);
    assert_eq!(buf, pt, "{cipher:?} decrypt");
}

/// Seals `pt` with a combined cipher, checks ciphertext and ICV (the
/// ICV may be a truncation of `tag`), and opens it again.
fn aead_kat(alg: EncAlg, key: &[u8], iv: &[u8], aad: &[u8], pt: &[u8], ct: &[u8], tag: &[u8]) {
    let cipher = Cipher::new(alg, key).unwrap();
    let mut buf = pt.to_vec();
    let mut icv = vec![0; cipher.icv_len()];
    cipher.seal(iv, aad, &mut buf, &mut icv);
    assert_eq!(buf, ct, "{cipher:?} ciphertext");
    assert_eq!(icv, tag[..cipher.icv_len()], "{cipher:?} ICV");
    cipher.open(iv, aad, &mut buf, &icv).unwrap();
    assert_eq!(buf, pt, "{cipher:?} open");
}

/// A GCM vector from the McGrew–Viega specification: 16-byte key,
/// 12-byte nonce IV, additional data, plaintext, ciphertext, tag.
fn gcm_spec_kat(k: &str, nonce: &str, a: &str, p: &str, c: &str, t: &str) {
    let (nonce, tag) = (h(nonce), h(t));
    let key = [h(k), nonce[..4].to_vec()].concat();
    let (a, p, c) = (h(a), h(p), h(c));
    for alg in [EncAlg::X_AESGCM16, EncAlg::X_AESGCM12, EncAlg::X_AESGCM8] {
        aead_kat(alg, &key, &nonce[4..], &a, &p, &c, &tag);
    }
}

/// An AES-GCM-ESP case of draft-mcgrew-gcm-test-01 section 4: the key
/// without salt, the 12-byte nonce, aad, plaintext, ciphertext || tag.
fn gcm_esp_kat(key: &str, nonce: &str, aad: &str, pt: &str, ct_tag: &str) {
    let (nonce, ct_tag) = (h(nonce), h(ct_tag));
    let key = [h(key), nonce[..4].to_vec()].concat();
    let (ct, tag) = ct_tag.split_at(ct_tag.len() - 16);
    aead_kat(
        EncAlg::X_AESGCM16,
        &key,
        &nonce[4..],
        &h(aad),
        &h(pt),
        ct,
        tag,
    );
}

// RFC 3602 section 4, cases 1-4 (AES-128-CBC).
#[test]
fn aes_cbc_rfc3602() {
    plain_kat(
        EncAlg::X_AES,
        &h("06a9214036b8a15b512e03d534120006"),
        &h("3dafba429d9eb430b422da802c9fac41"),
        b"Single block msg",
        &h("e353779c1079aeb82708942dbe77181a"),
    );
    plain_kat(
        EncAlg::X_AES,
        &h("c286696d887c9aa0611bbb3e2025a45a"),
        &h("562e17996d093d28ddb3ba695a2e6f58"),
        &h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        &h("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"),
    );
    plain_kat(
        EncAlg::X_AES,
        &h("6c3ea0477630ce21a2ce334aa746c2cd"),
        &h("c782dc4c098c66cbd9cd27d825682c81"),
        b"This is a 48-byte message (exactly 3 AES blocks)",
        &h("d0a02b3836451753d493665d33f0e886
            2dea54cdb293abc7506939276772f8d5
            021c19216bad525c8579695d83ba2684"),
    );
    plain_kat(
        EncAlg::X_AES,
        &h("56e47a38c5598974bc46903dba290349"),
        &h("8ce82eefbea0da3c44699ed7db51b7d9"),
        &h("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf
            b0b1b2b3b4b5b6b7b8b9babbbcbdbebf
            c0c1c2c3c4c5c6c7c8c9cacbcccdcecf
            d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"),
        &h("c30e32ffedc0774e6aff6af0869f71aa
            0f3af07a9a31a9c684db207eb0ef8e4e
            35907aa632c3ffdf868bb7b29d3d46ad
            83ce9f9a102ee99d49a53e87f4c3da55"),
    );
}

// NIST SP 800-38A F.2.3/F.2.4 (CBC-AES192) and F.2.5/F.2.6 (CBC-AES256).
#[test]
fn aes_cbc_sp800_38a_192_256() {
    let iv = h("000102030405060708090a0b0c0d0e0f");
    let pt = h("6bc1bee22e409f96e93d7e117393172a
                ae2d8a571e03ac9c9eb76fac45af8e51
                30c81c46a35ce411e5fbc1191a0a52ef
                f69f2445df4f9b17ad2b417be66c3710");
    plain_kat(
        EncAlg::X_AES,
        &h("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b"),
        &iv,
        &pt,
        &h("4f021db243bc633d7178183a9fa071e8
            b4d9ada9ad7dedf4e5e738763f69145a
            571b242012fb7ae07fa9baac3df102e0
            08b0e27988598881d920a9e64f5615cd"),
    );
    plain_kat(
        EncAlg::X_AES,
        &h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"),
        &iv,
        &pt,
        &h("f58c4c04d6e5f1ba779eabfb5f7bfbd6
            9cfc4e967edb808d679f777bc6702c7d
            39f23369a9d9bacfa530e26304231461
            b2eb05e2c39be9fcda6c19078c6a9d1b"),
    );
}

#[test]
fn tdes_cbc() {
    // OpenSSL test/evptests.txt, DES-EDE3-CBC (Eric Young's libdes cbc3 data).
    plain_kat(
        EncAlg::TRIPLE_DES_CBC,
        &h("0123456789abcdeff1e0d3c2b5a49786fedcba9876543210"),
        &h("fedcba9876543210"),
        &h("37363534333231204e6f77206973207468652074696d6520666f722000000000"),
        &h("3fe301c962ac01d02213763c1cbd4cdc799657c064ecf5d41c673812cfde9675"),
    );
    // NIST SP 800-20 Table A.1 (variable plaintext), first entry: one
    // block under a zero IV is plain TDEA encryption.
    plain_kat(
        EncAlg::TRIPLE_DES_CBC,
        &h("010101010101010101010101010101010101010101010101"),
        &[0; 8],
        &h("8000000000000000"),
        &h("95f8a5e5dd31d900"),
    );
}

// RFC 3686 section 6: key || nonce as key material, the 8-byte IV.
#[test]
fn aes_ctr_rfc3686() {
    let count32 = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let count36 = [count32.clone(), h("20212223")].concat();
    let vectors: [(&str, &str, &[u8], &str); 6] = [
        // Test Vector #1: 16 octets, 128-bit key.
        (
            "ae6852f8121067cc4bf7a5765577f39e 00000030",
            "0000000000000000",
            b"Single block msg",
            "e4095d4fb7a7b3792d6175a3261311b8",
        ),
        // Test Vector #2: 32 octets, 128-bit key.
        (
            "7e24067817fae0d743d6ce1f32539163 006cb6db",
            "c0543b59da48d90b",
            &count32,
            "5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28",
        ),
        // Test Vector #3: 36 octets, 128-bit key.
        (
            "7691be035e5020a8ac6e618529f9a0dc 00e0017b",
            "27777f3f4a1786f0",
            &count36,
            "c1cf48a89f2ffdd9cf4652e9efdb72d74540a42bde6d7836d59a5ceaaef3105325b2072f",
        ),
        // Test Vector #4: 16 octets, 192-bit key.
        (
            "16af5b145fc9f579c175f93e3bfb0eed863d06ccfdb78515 00000048",
            "36733c147d6d93cb",
            b"Single block msg",
            "4b55384fe259c9c84e7935a003cbe928",
        ),
        // Test Vector #7: 16 octets, 256-bit key.
        (
            "776beff2851db06f4c8a0542c8696f6c6a81af1eec96b4d37fc1d689e6c1c104 00000060",
            "db5672c97aa8f0b2",
            b"Single block msg",
            "145ad01dbf824ec7560863dc71e3e0c0",
        ),
        // Test Vector #9: 36 octets, 256-bit key.
        (
            "ff7a617ce69148e4f1726e2f43581de2aa62d9f805532edff1eed687fb54153d 001cc5b7",
            "51a51d70a1c11148",
            &count36,
            "eb6c52821d0bbbf7ce7594462aca4faab407df866569fd07f48cc0b583d6071f1ec0e6b8",
        ),
    ];
    for (key, iv, pt, ct) in vectors {
        plain_kat(EncAlg::X_AESCTR, &h(key), &h(iv), pt, &h(ct));
    }
}

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", appendix B:
// test cases 2, 3, 4 (AES-128) and 16 (AES-256). GCM8 and GCM12 must give
// the first 8 and 12 bytes of the same tag.
#[test]
fn gcm_spec_cases() {
    let p64 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
               1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    let p60 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
               1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    let a = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    let k = "feffe9928665731c6d6a8f9467308308";
    let nonce = "cafebabefacedbaddecaf888";
    // Test case 2.
    gcm_spec_kat(
        "00000000000000000000000000000000",
        "000000000000000000000000",
        "",
        "00000000000000000000000000000000",
        "0388dace60b6a392f328c2b971b2fe78",
        "ab6e47d42cec13bdf53a67b21257bddf",
    );
    // Test case 3.
    gcm_spec_kat(
        k,
        nonce,
        "",
        p64,
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4",
    );
    // Test case 4.
    gcm_spec_kat(
        k,
        nonce,
        a,
        p60,
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    );
    // Test case 16.
    gcm_spec_kat(
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        nonce,
        a,
        p60,
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    );
}

// draft-mcgrew-gcm-test-01 section 4, AES-GCM-ESP cases: 4- and 8-byte
// sequence numbers (8- and 12-byte aad), 128-, 192- and 256-bit keys.
#[test]
fn gcm_esp_draft_mcgrew_gcm_test() {
    // Page 7: 128-bit key, extended sequence number.
    gcm_esp_kat(
        "4c80cdefbb5d10da906ac73c3613a634",
        "2e443b684956ed7e3b244cfe",
        "000043218765432100000000",
        "45000048699a000080114db7c0a80102
         c0a801010a9bf15638d3010000010000
         00000000045f736970045f7564700373
         69700963796265726369747902646b00
         0021000101020201",
        "fecf537e729d5b07dc30df528dd22b76
         8d1b98736696a6fd348509fa13ceac34
         cfa2436f14a3f3cf65925bf1f4a13c5d
         15b21e1884f5ff6247aeabb786b93bce
         61bc17d768fd9732459018148f6cbe72
         2fd04796562dfdb4",
    );
    // Page 8: 128-bit key, 4-byte sequence number.
    gcm_esp_kat(
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "0000a5f80000000a",
        "4500003e698f000080114dccc0a80102
         c0a801010a980035002a2343b2d00100
         00010000000000000373697009637962
         65726369747902646b00000100010001",
        "deb22cd9b07c72c16e3a65beeb8df304
         a5a5897d33ae530f1ba76d5d114d2a5c
         3de81827c10e9a4f51330d0eec416642
         cfbb85a5b47e48a4ec3b9ba95d918bd1
         83b70d3aa8bc6ee4c309e9d85a41ad4a",
    );
    // Page 9: 256-bit key.
    gcm_esp_kat(
        "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        "112233440102030405060708",
        "4a2cbfe300000002",
        "4500003069a6400080062690c0a80102
         9389155e0a9e008b2dc57ee000000000
         7002400020bf0000020405b401010402
         01020201",
        "ff425c9b724599df7a3bcd510194e00d
         6a78107f1b0b1cbf06efae9d65a5d763
         748a637985771d347f0545659f14e99d
         ef842d8eb335f4eecfdbf831824b4c49
         15956c96",
    );
    // Page 12: 192-bit key.
    gcm_esp_kat(
        "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        "cafebabefacedbaddecaf888",
        "0000a5f80000000a",
        "45000028a4ad4000400678800a01038f
         0a010612802306b8cb712602dd6bb03e
         501016d075680001",
        "a5b1f8066029aea40e598b8122de0242
         0938b3ab33f828e687b8858b5bfbdbd0
         315b27452144cc7795457b9652037f53
         18027b5b4cd7a636",
    );
    // Page 17: a 4-byte payload.
    gcm_esp_kat(
        "7d773d00c144c525ac619d18c84a3f47",
        "d966426743457e9182443bc6",
        "335467aeffffffff",
        "01020201",
        "437f866bcb3f699fe9b0822bac961c4504bef270",
    );
}

// draft-mcgrew-gcm-test-01 section 4, the AES-GMAC-ESP case (page 19):
// GMAC's aad is SPI || seq || IV || payload, and nothing is encrypted.
#[test]
fn gmac_esp_draft_mcgrew_gcm_test() {
    let key = h("4c80cdefbb5d10da906ac73c3613a634 22433c64");
    let payload = h("45000030da3a00008001df3bc0a80005
                     c0a800010800c6cd0200070061626364
                     65666768696a6b6c6d6e6f7071727374
                     01020201");
    let (spi_seq, iv) = (h("0000432100000007"), h("0000000000000000"));
    aead_kat(
        EncAlg::X_AESGMAC,
        &key,
        &iv,
        &spi_seq,
        &payload,
        &payload,
        &h("f2a9a836e155106aa8dcd618e4099aaa"),
    );
}

// RFC 8439 section 2.8.2: the nonce is the constant 07000000 (the salt)
// followed by the 8-byte IV.
#[test]
fn chacha20_poly1305_rfc8439() {
    let key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f 07000000");
    aead_kat(
        EncAlg::X_CHACHA20POLY1305,
        &key,
        &h("4041424344454647"),
        &h("50515253c0c1c2c3c4c5c6c7"),
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for \
          the future, sunscreen would be it.",
        &h("d31a8d34648e60db7b86afbc53ef7ec2
            a4aded51296e08fea9e2b5a736ee62d6
            3dbea45e8ca9671282fafb69da92728b
            1a71de0a9e060b2905d6a5b67ecd3b36
            92ddbd7f2d778b8c9803aee328091b58
            fab324e4fad675945585808b4831d7bc
            3ff4def08e4b7a9de576d26586cec64b
            6116"),
        &h("1ae10b594f09e26a7e902ecbd0600691"),
    );
}

/// Checks the full HMAC and the truncated ICV that `sign` makes and
/// `verify` accepts.
fn mac_kat(mac: &Mac, data: &[u8], full: &str) {
    let full = h(full);
    assert_eq!(mac.untruncated(&[data]), full, "{mac:?} full");
    let mut icv = vec![0; mac.icv_len()];
    mac.sign(&[data], &mut icv);
    assert_eq!(icv, full[..mac.icv_len()], "{mac:?} truncated");
    mac.verify(&[data], &icv).unwrap();
}

// RFC 2202 sections 2 (MD5) and 3 (SHA-1). Test cases 1, 3 and 5 use keys
// of the ESP lengths; test case 2's "Jefe" does not.
#[test]
fn hmac_md5_sha1_rfc2202() {
    let md5 = |key: &[u8]| Mac::new(AuthAlg::MD5HMAC, key).unwrap();
    let sha1 = |key: &[u8]| Mac::new(AuthAlg::SHA1HMAC, key).unwrap();
    let jefe: &[u8] = b"what do ya want for nothing?";
    mac_kat(
        &md5(&[0x0b; 16]),
        b"Hi There",
        "9294727a3638bb1c13f48ef8158bfc9d",
    );
    mac_kat(
        &Mac::any_length(AuthAlg::MD5HMAC, b"Jefe").unwrap(),
        jefe,
        "750c783e6ab0b503eaa86e310a5db738",
    );
    mac_kat(
        &md5(&[0xaa; 16]),
        &[0xdd; 50],
        "56be34521d144c88dbb8c733f0e8b3f6",
    );
    mac_kat(
        &md5(&[0x0c; 16]),
        b"Test With Truncation",
        "56461ef2342edc00f9bab995690efd4c",
    );
    mac_kat(
        &sha1(&[0x0b; 20]),
        b"Hi There",
        "b617318655057264e28bc0b6fb378c8ef146be00",
    );
    mac_kat(
        &Mac::any_length(AuthAlg::SHA1HMAC, b"Jefe").unwrap(),
        jefe,
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
    );
    mac_kat(
        &sha1(&[0x0c; 20]),
        b"Test With Truncation",
        "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
    );
}

// RFC 4231 test cases 1, 2 and 4 (sections 4.2, 4.3, 4.5). Their keys are
// not the ESP lengths, so these go through `any_length`.
#[test]
fn hmac_sha2_rfc4231() {
    let key4: Vec<u8> = (1..=0x19).collect();
    let cases: [(&[u8], &[u8], [&str; 3]); 3] = [
        (
            &[0x0b; 20],
            b"Hi There",
            [
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec6
                 82aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            [
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47
                 e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
        ),
        (
            &key4,
            &[0xcd; 50],
            [
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                "3e8a69b7783c25851933ab6290af6ca77a9981480850009c
                 c5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb",
                "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db
                 a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
            ],
        ),
    ];
    let algs = [
        AuthAlg::X_SHA2_256,
        AuthAlg::X_SHA2_384,
        AuthAlg::X_SHA2_512,
    ];
    for (key, data, fulls) in cases {
        for (alg, full) in algs.into_iter().zip(fulls) {
            mac_kat(&Mac::any_length(alg, key).unwrap(), data, full);
        }
    }
}

// RFC 4868 section 2.7.2 (AUTH256-1, AUTH256-2, AUTH384-1, AUTH512-1):
// keys of exactly the ESP lengths, through `Mac::new`.
#[test]
fn hmac_sha2_rfc4868() {
    let cases: [(AuthAlg, Vec<u8>, &[u8], &str); 4] = [
        (
            AuthAlg::X_SHA2_256,
            vec![0x0b; 32],
            b"Hi There",
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
        ),
        (
            AuthAlg::X_SHA2_256,
            b"Jefe".repeat(8),
            b"what do ya want for nothing?",
            "167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6",
        ),
        (
            AuthAlg::X_SHA2_384,
            vec![0x0b; 48],
            b"Hi There",
            "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973
             7a959796489bddbc4c5df61d5b3297b4fb68dab9f1b582c2",
        ),
        (
            AuthAlg::X_SHA2_512,
            vec![0x0b; 64],
            b"Hi There",
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8
             ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
        ),
    ];
    for (alg, key, data, full) in cases {
        mac_kat(&Mac::new(alg, &key).unwrap(), data, full);
    }
}

#[test]
fn mac_signs_the_concatenation_of_its_parts() {
    let mac = Mac::new(AuthAlg::X_SHA2_256, &[0x0b; 32]).unwrap();
    let mut whole = [0; 16];
    let mut split = [0; 16];
    mac.sign(&[b"Hi There"], &mut whole);
    mac.sign(&[b"Hi", b"", b" The", b"re"], &mut split);
    assert_eq!(whole, split);
    assert_eq!(whole[..], h("198a607eb44bfbc69903a0f1cf2bbdc5"));
    mac.verify(&[b"Hi ", b"There"], &whole).unwrap();
}

/// Every combined cipher, with key material of every length it takes.
fn combined_ciphers() -> Vec<Cipher> {
    let mut ciphers = Vec::new();
    for alg in [
        EncAlg::X_AESGCM8,
        EncAlg::X_AESGCM12,
        EncAlg::X_AESGCM16,
        EncAlg::X_AESGMAC,
    ] {
        for len in [20, 28, 36] {
            ciphers.push(Cipher::new(alg, &key_material(len)).unwrap());
        }
    }
    ciphers.push(Cipher::new(EncAlg::X_CHACHA20POLY1305, &key_material(36)).unwrap());
    ciphers
}

/// Distinct bytes, so that no key is accidentally symmetric.
fn key_material(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 1) as u8).collect()
}

#[test]
fn open_rejects_any_flipped_bit_and_leaves_data_alone() {
    let iv = h("0102030405060708");
    let aad = h("00001234 00000042 00000001");
    let pt: Vec<u8> = (0..45).collect();
    for cipher in combined_ciphers() {
        let mut sealed = pt.clone();
        let mut icv = vec![0; cipher.icv_len()];
        cipher.seal(&iv, &aad, &mut sealed, &mut icv);
        let tampered = |data: &[u8], aad: &[u8], icv: &[u8], iv: &[u8]| {
            let mut buf = data.to_vec();
            assert_eq!(
                cipher.open(iv, aad, &mut buf, icv),
                Err(BadIcv),
                "{cipher:?}"
            );
            assert_eq!(buf, data, "{cipher:?} changed data it rejected");
        };
        for byte in [0, 17, sealed.len() - 1] {
            let mut data = sealed.clone();
            data[byte] ^= 0x01;
            tampered(&data, &aad, &icv, &iv);
        }
        for byte in [0, aad.len() - 1] {
            let mut bad = aad.clone();
            bad[byte] ^= 0x80;
            tampered(&sealed, &bad, &icv, &iv);
        }
        for byte in [0, icv.len() - 1] {
            let mut bad = icv.clone();
            bad[byte] ^= 0x10;
            tampered(&sealed, &aad, &bad, &iv);
        }
        let mut bad_iv = iv.clone();
        bad_iv[7] ^= 0x01;
        tampered(&sealed, &aad, &icv, &bad_iv);
        tampered(&sealed, &aad, &icv[..icv.len() - 1], &iv);
        tampered(&sealed[..sealed.len() - 1], &aad, &icv, &iv);

        let mut buf = sealed.clone();
        cipher.open(&iv, &aad, &mut buf, &icv).unwrap();
        assert_eq!(buf, pt, "{cipher:?}");
    }
}

#[test]
fn gmac_leaves_the_payload_in_the_clear() {
    let cipher = Cipher::new(EncAlg::X_AESGMAC, &key_material(20)).unwrap();
    let mut data = b"in the clear".to_vec();
    let mut icv = [0; 16];
    cipher.seal(&[9; 8], b"spi!seq!", &mut data, &mut icv);
    assert_eq!(data, b"in the clear");
    assert_ne!(icv, [0; 16]);
}

#[test]
fn gcm_truncations_share_the_full_tag() {
    let key = key_material(20);
    let mut tags = Vec::new();
    for alg in [EncAlg::X_AESGCM8, EncAlg::X_AESGCM12, EncAlg::X_AESGCM16] {
        let cipher = Cipher::new(alg, &key).unwrap();
        let mut data = vec![0x42; 33];
        let mut icv = vec![0; cipher.icv_len()];
        cipher.seal(&[1; 8], b"aad", &mut data, &mut icv);
        tags.push(icv);
    }
    assert_eq!(tags[0], tags[2][..8]);
    assert_eq!(tags[1], tags[2][..12]);
}

#[test]
fn verify_rejects_a_flipped_bit_or_a_short_icv() {
    let algs = [
        (AuthAlg::MD5HMAC, 16),
        (AuthAlg::SHA1HMAC, 20),
        (AuthAlg::X_SHA2_256, 32),
        (AuthAlg::X_SHA2_384, 48),
        (AuthAlg::X_SHA2_512, 64),
    ];
    for (alg, len) in algs {
        let mac = Mac::new(alg, &key_material(len)).unwrap();
        let parts: [&[u8]; 2] = [b"header", b"payload"];
        let mut icv = vec![0; mac.icv_len()];
        mac.sign(&parts, &mut icv);
        mac.verify(&parts, &icv).unwrap();
        for bit in 0..icv.len() * 8 {
            let mut bad = icv.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(mac.verify(&parts, &bad), Err(BadIcv), "{mac:?} bit {bit}");
        }
        assert_eq!(mac.verify(&parts, &icv[1..]), Err(BadIcv), "{mac:?}");
        assert_eq!(mac.verify(&[b"header", b"payloaD"], &icv), Err(BadIcv));
    }
}

#[test]
fn round_trip_every_plain_cipher_and_key_size() {
    let ciphers = [
        (EncAlg::NULL, 0),
        (EncAlg::NULL, 20),
        (EncAlg::X_AES, 16),
        (EncAlg::X_AES, 24),
        (EncAlg::X_AES, 32),
        (EncAlg::TRIPLE_DES_CBC, 24),
        (EncAlg::X_AESCTR, 20),
        (EncAlg::X_AESCTR, 28),
        (EncAlg::X_AESCTR, 36),
    ];
    for (alg, len) in ciphers {
        let cipher = Cipher::new(alg, &key_material(len)).unwrap();
        // Whole blocks for CBC; an odd length for the stream-like rest.
        let n = if cipher.block_len() > 1 {
            4 * cipher.block_len()
        } else {
            61
        };
        let pt: Vec<u8> = (0..n).map(|i| (i * 3) as u8).collect();
        let iv: Vec<u8> = (0..cipher.iv_len()).map(|i| 0xa0 + i as u8).collect();
        let mut buf = pt.clone();
        cipher.encrypt(&iv, &mut buf);
        if alg == EncAlg::NULL {
            assert_eq!(buf, pt);
        } else {
            assert_ne!(buf, pt, "{cipher:?}");
        }
        cipher.decrypt(&iv, &mut buf);
        assert_eq!(buf, pt, "{cipher:?}");
    }
}

#[test]
fn cipher_parameters() {
    // (alg, key length, block, IV, ICV, combined, counter IV)
    let table = [
        (EncAlg::NULL, 0, 1, 0, 0, false, false),
        (EncAlg::X_AES, 16, 16, 16, 0, false, false),
        (EncAlg::X_AES, 32, 16, 16, 0, false, false),
        (EncAlg::TRIPLE_DES_CBC, 24, 8, 8, 0, false, false),
        (EncAlg::X_AESCTR, 20, 1, 8, 0, false, true),
        (EncAlg::X_AESGCM8, 20, 1, 8, 8, true, true),
        (EncAlg::X_AESGCM12, 28, 1, 8, 12, true, true),
        (EncAlg::X_AESGCM16, 36, 1, 8, 16, true, true),
        (EncAlg::X_AESGMAC, 20, 1, 8, 16, true, true),
        (EncAlg::X_CHACHA20POLY1305, 36, 1, 8, 16, true, true),
    ];
    for (alg, len, block, iv, icv, combined, counter) in table {
        let c = Cipher::new(alg, &key_material(len)).unwrap();
        assert_eq!(
            (
                c.block_len(),
                c.iv_len(),
                c.icv_len(),
                c.is_combined(),
                c.counter_iv()
            ),
            (block, iv, icv, combined, counter),
            "{c:?}"
        );
    }
}

#[test]
fn mac_icv_lengths() {
    let table = [
        (AuthAlg::MD5HMAC, 16, 12),
        (AuthAlg::SHA1HMAC, 20, 12),
        (AuthAlg::X_SHA2_256, 32, 16),
        (AuthAlg::X_SHA2_384, 48, 24),
        (AuthAlg::X_SHA2_512, 64, 32),
    ];
    for (alg, len, icv) in table {
        assert_eq!(Mac::new(alg, &key_material(len)).unwrap().icv_len(), icv);
    }
}

#[test]
fn cipher_key_lengths() {
    let null: Vec<usize> = (0..=256).collect();
    let accepted: [(EncAlg, &[usize]); 9] = [
        (EncAlg::NULL, &null),
        (EncAlg::X_AES, &[16, 24, 32]),
        (EncAlg::TRIPLE_DES_CBC, &[24]),
        (EncAlg::X_AESCTR, &[20, 28, 36]),
        (EncAlg::X_AESGCM8, &[20, 28, 36]),
        (EncAlg::X_AESGCM12, &[20, 28, 36]),
        (EncAlg::X_AESGCM16, &[20, 28, 36]),
        (EncAlg::X_AESGMAC, &[20, 28, 36]),
        (EncAlg::X_CHACHA20POLY1305, &[36]),
    ];
    for (alg, lengths) in accepted {
        for len in 0..=300 {
            let result = Cipher::new(alg, &key_material(len)).map(|_| ());
            if lengths.contains(&len) {
                assert_eq!(result, Ok(()), "{alg:?} with {len} bytes");
            } else {
                assert_eq!(result, Err(KeyError::BadLength), "{alg:?} with {len} bytes");
            }
        }
    }
    for alg in [EncAlg::NONE, EncAlg::X_CAST, EncAlg::X_BLF, EncAlg(99)] {
        assert_eq!(
            Cipher::new(alg, &key_material(16)).map(|_| ()),
            Err(KeyError::Unsupported)
        );
    }
}

#[test]
fn mac_key_lengths() {
    let exact = [
        (AuthAlg::MD5HMAC, 16),
        (AuthAlg::SHA1HMAC, 20),
        (AuthAlg::X_SHA2_256, 32),
        (AuthAlg::X_SHA2_384, 48),
        (AuthAlg::X_SHA2_512, 64),
    ];
    for (alg, exact) in exact {
        for len in 0..=130 {
            let result = Mac::new(alg, &key_material(len)).map(|_| ());
            let want = if len == exact {
                Ok(())
            } else {
                Err(KeyError::BadLength)
            };
            assert_eq!(result, want, "{alg:?} with {len} bytes");
        }
    }
    for alg in [
        AuthAlg::NONE,
        AuthAlg::X_RIPEMD160HMAC,
        AuthAlg::X_AES128GMAC,
        AuthAlg::X_AES192GMAC,
        AuthAlg::X_AES256GMAC,
        AuthAlg::X_CHACHA20POLY1305,
        AuthAlg(99),
    ] {
        assert_eq!(
            Mac::new(alg, &key_material(20)).map(|_| ()),
            Err(KeyError::Unsupported)
        );
    }
}

#[test]
fn debug_shows_no_key() {
    // 0x5a is 90: look for it in hex, in decimal and as a byte list.
    let leaks = |text: &str| {
        ["5a5a", "5A5A", "90, 90", "0x5a", "[90"]
            .iter()
            .any(|pattern| text.contains(pattern))
    };
    let ciphers = [
        (EncAlg::NULL, 16),
        (EncAlg::X_AES, 32),
        (EncAlg::TRIPLE_DES_CBC, 24),
        (EncAlg::X_AESCTR, 36),
        (EncAlg::X_AESGCM16, 36),
        (EncAlg::X_AESGMAC, 20),
        (EncAlg::X_CHACHA20POLY1305, 36),
    ];
    for (alg, len) in ciphers {
        let text = format!("{:?}", Cipher::new(alg, &vec![0x5a; len]).unwrap());
        assert!(!leaks(&text), "{text}");
        assert!(text.starts_with("Cipher { alg: "), "{text}");
    }
    for (alg, len) in [(AuthAlg::MD5HMAC, 16), (AuthAlg::X_SHA2_512, 64)] {
        let text = format!("{:?}", Mac::new(alg, &vec![0x5a; len]).unwrap());
        assert!(!leaks(&text), "{text}");
        assert!(text.starts_with("Mac { alg: "), "{text}");
    }
}

#[test]
fn clones_work_alike() {
    let cipher = Cipher::new(EncAlg::X_AESGCM16, &key_material(36)).unwrap();
    let twin = cipher.clone();
    let (mut a, mut b) = (vec![7; 40], vec![7; 40]);
    let (mut icv_a, mut icv_b) = ([0; 16], [0; 16]);
    cipher.seal(&[3; 8], b"aad", &mut a, &mut icv_a);
    drop(cipher);
    twin.seal(&[3; 8], b"aad", &mut b, &mut icv_b);
    assert_eq!((a, icv_a), (b, icv_b));

    let mac = Mac::new(AuthAlg::SHA1HMAC, &key_material(20)).unwrap();
    let mut icv = [0; 12];
    mac.clone().sign(&[b"x"], &mut icv);
    mac.verify(&[b"x"], &icv).unwrap();
}
