//! The one field of an X.509 certificate the server reports: when it expires, so that an alert
//! can warn before a served certificate lapses. rustls checks certificates but does not expose
//! their validity, and a full X.509 parser is a large dependency for one date, so this walks
//! the DER to `tbsCertificate.validity.notAfter` (RFC 5280, section 4.1) and nothing else.

use crate::base::utc::days_from_civil;

/// A DER element at the start of `data`: its tag, its contents, and what follows it.
fn element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return None;
        }
        let length = rest[..bytes]
            .iter()
            .fold(0usize, |length, &b| length << 8 | usize::from(b));
        (length, &rest[bytes..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// `notAfter` of a DER certificate, in Unix seconds; `None` if the DER is not a certificate.
pub fn not_after(der: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = element(certificate)? else {
        return None;
    };
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs)?.2;
    }
    // serialNumber, signature, issuer; then validity.
    for _ in 0..3 {
        tbs = element(tbs)?.2;
    }
    let (SEQUENCE, validity, _) = element(tbs)? else {
        return None;
    };
    let after_not_before = element(validity)?.2;
    let (tag, time, _) = element(after_not_before)?;
    time_of(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as
/// RFC 5280 section 4.1.2.5 requires them to be written.
fn time_of(tag: u8, text: &[u8]) -> Option<i64> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 12 => {
            let year: i64 = text[..2].parse().ok()?;
            (
                if year >= 50 { 1900 + year } else { 2000 + year },
                &text[2..],
            )
        }
        GENERALIZED_TIME if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |at: usize| -> Option<i64> {
        let digits = rest.get(at..at + 2)?;
        digits.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
        digits.parse().ok()
    };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn not_after_is_read_in_utc_time_and_generalized_time() {
        // 2031-05-17: UTCTime; 2051-01-02: GeneralizedTime, as RFC 5280 has them.
        assert_eq!(not_after(&certificate((2031, 5, 17))), Some(1_936_742_400));
        assert_eq!(not_after(&certificate((2051, 1, 2))), Some(2_556_230_400));
        assert_eq!(not_after(&certificate((1999, 12, 31))), Some(946_598_400));
    }

    #[test]
    fn what_is_not_a_certificate_reads_as_none() {
        let der = certificate((2031, 5, 17));
        assert_eq!(not_after(&der[..der.len() / 2]), None);
        assert_eq!(not_after(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(not_after(&[]), None);
        assert_eq!(time_of(0x17, b"3113051700000Z"), None, "month 13");
        assert_eq!(time_of(0x18, b"20310517000000"), None, "no Z");
    }
}
