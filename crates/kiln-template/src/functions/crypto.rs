//! Hash and crypto functions: bcrypt, md5, rsadecrypt, sha1, sha256,
//! sha512, uuidv4, uuidv5.

use std::fmt::Write as _;

use sha2::Digest as _;

use super::{Fail, Func, FuncCtx, P, int_arg, p, str_arg};
use crate::value::Value;

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "bcrypt",
        params: &[p("str", P::String)],
        var_param: Some(p("cost", P::Number)),
        imp: bcrypt,
    },
    Func {
        name: "md5",
        params: &[p("str", P::String)],
        var_param: None,
        imp: md5,
    },
    Func {
        name: "rsadecrypt",
        params: &[p("ciphertext", P::String), p("privatekey", P::String)],
        var_param: None,
        imp: rsadecrypt,
    },
    Func {
        name: "sha1",
        params: &[p("str", P::String)],
        var_param: None,
        imp: sha1,
    },
    Func {
        name: "sha256",
        params: &[p("str", P::String)],
        var_param: None,
        imp: sha256,
    },
    Func {
        name: "sha512",
        params: &[p("str", P::String)],
        var_param: None,
        imp: sha512,
    },
    Func {
        name: "uuidv4",
        params: &[],
        var_param: None,
        imp: uuidv4,
    },
    Func {
        name: "uuidv5",
        params: &[p("namespace", P::String), p("name", P::String)],
        var_param: None,
        imp: uuidv5,
    },
];

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn md5(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(hex(&md5::Md5::digest(
        str_arg(&args, 0)?.as_bytes(),
    ))))
}

fn sha1(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(hex(&sha1::Sha1::digest(
        str_arg(&args, 0)?.as_bytes(),
    ))))
}

fn sha256(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(hex(&sha2::Sha256::digest(
        str_arg(&args, 0)?.as_bytes(),
    ))))
}

fn sha512(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(hex(&sha2::Sha512::digest(
        str_arg(&args, 0)?.as_bytes(),
    ))))
}

/// Go's `bcrypt.GenerateFromPassword`: `$2a$`, cost 10 by default and for
/// any cost below 4, at most 31, passwords of at most 72 bytes.
fn bcrypt(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let mut cost = 10;
    if args.len() > 1 {
        cost = int_arg(&args, 1)?;
    }
    if args.len() > 2 {
        return Err(Fail::call("bcrypt() takes no more than two arguments"));
    }
    let password = str_arg(&args, 0)?;
    if cost < 4 {
        cost = 10;
    }
    if cost > 31 {
        return Err(Fail::call(format!(
            "error occured generating password crypto/bcrypt: cost {cost} is outside allowed range (4,31)"
        )));
    }
    if password.len() > 72 {
        return Err(Fail::call(
            "error occured generating password bcrypt: password length exceeds 72 bytes",
        ));
    }
    let hashed = ::bcrypt::hash_with_result(password, cost as u32)
        .map_err(|e| Fail::call(format!("error occured generating password {e}")))?;
    Ok(Value::String(
        hashed.format_for_version(::bcrypt::Version::TwoA),
    ))
}

fn rsadecrypt(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    let ciphertext = str_arg(&args, 0)?;
    let key = str_arg(&args, 1)?;
    let bytes = super::encoding::go_base64_decode(ciphertext).map_err(|_| {
        Fail::call(format!(
            "failed to decode input {}: cipher text must be base64-encoded",
            crate::value::go_quote(ciphertext)
        ))
    })?;
    let block = pem_block(key).ok_or_else(|| Fail::call("failed to parse key: no key found"))?;
    if block.encrypted {
        return Err(Fail::call(
            "failed to parse key: password protected keys are not supported. Please decrypt the key prior to use",
        ));
    }
    let private = rsa::RsaPrivateKey::from_pkcs1_der(&block.der).map_err(|_| {
        Fail::call(if block.label == "PRIVATE KEY" {
            "x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)"
        } else if block.label == "EC PRIVATE KEY" {
            "x509: failed to parse private key (use ParseECPrivateKey instead for this key format)"
        } else {
            "x509: failed to parse private key"
        })
    })?;
    let plain = private
        .decrypt(rsa::Pkcs1v15Encrypt, &bytes)
        .map_err(|_| Fail::call("crypto/rsa: decryption error"))?;
    String::from_utf8(plain)
        .map(Value::String)
        .map_err(|_| Fail::call("the decrypted text is not valid UTF-8"))
}

struct PemBlock {
    label: String,
    der: Vec<u8>,
    encrypted: bool,
}

/// The first PEM block of `text` (Go's `pem.Decode`), headers read for
/// `Proc-Type: 4,ENCRYPTED`.
fn pem_block(text: &str) -> Option<PemBlock> {
    let start = text.find("-----BEGIN ")?;
    let after = &text[start + 11..];
    let label_end = after.find("-----")?;
    let label = after[..label_end].to_string();
    let body = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body.find(&end_marker)?;
    let body = &body[..end];
    let mut encrypted = false;
    let mut b64 = String::new();
    for line in body.lines() {
        let line = line.trim();
        if let Some((name, value)) = line.split_once(':') {
            if name.trim() == "Proc-Type" && value.trim() == "4,ENCRYPTED" {
                encrypted = true;
            }
            continue;
        }
        b64.push_str(line);
    }
    let der = super::encoding::go_base64_decode(&b64).ok()?;
    Some(PemBlock {
        label,
        der,
        encrypted,
    })
}

fn uuidv4(_: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(uuid::Uuid::new_v4().hyphenated().to_string()))
}

fn uuidv5(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let ns = str_arg(&args, 0)?;
    let namespace = match ns {
        "dns" => uuid::Uuid::NAMESPACE_DNS,
        "url" => uuid::Uuid::NAMESPACE_URL,
        "oid" => uuid::Uuid::NAMESPACE_OID,
        "x500" => uuid::Uuid::NAMESPACE_X500,
        other => uuid::Uuid::parse_str(other)
            .map_err(|e| Fail::call(format!("uuidv5() doesn't support namespace {other} ({e})")))?,
    };
    let name = str_arg(&args, 1)?;
    Ok(Value::String(
        uuid::Uuid::new_v5(&namespace, name.as_bytes())
            .hyphenated()
            .to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn hashes() {
        assert_eq!(
            call_ok("md5", vec![s("hello world")]),
            s("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert_eq!(
            call_ok("sha1", vec![s("hello world")]),
            s("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed")
        );
        assert_eq!(
            call_ok("sha256", vec![s("hello world")]),
            s("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        );
        assert_eq!(
            call_ok("sha512", vec![s("hello world")]),
            s(
                "309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f"
            )
        );
        assert_eq!(
            call_ok("md5", vec![n(1.0)]),
            s("c4ca4238a0b923820dcc509a6f75849b")
        );
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let Value::String(h) = call_ok("bcrypt", vec![s("hello world"), n(4.0)]) else {
            panic!()
        };
        assert!(h.starts_with("$2a$04$"), "{h}");
        assert!(::bcrypt::verify("hello world", &h).unwrap());
        let Value::String(h) = call_ok("bcrypt", vec![s("x"), n(1.0)]) else {
            panic!()
        };
        assert!(h.starts_with("$2a$10$"), "{h}");
        assert!(
            call_err("bcrypt", vec![s("x"), n(32.0)])
                .contains("cost 32 is outside allowed range (4,31)")
        );
        assert_eq!(
            call_err("bcrypt", vec![s("x"), n(4.0), n(5.0)]),
            "`bcrypt`: bcrypt() takes no more than two arguments"
        );
        assert!(call_err("bcrypt", vec![s(&"x".repeat(73))]).contains("exceeds 72 bytes"));
    }

    #[test]
    fn uuids() {
        let Value::String(u) = call_ok("uuidv4", vec![]) else {
            panic!()
        };
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(call_ok("uuidv4", vec![]), call_ok("uuidv4", vec![]));
        assert_eq!(
            call_ok("uuidv5", vec![s("dns"), s("www.terraform.io")]),
            s("a5008fae-b28c-5ba5-96cd-82b4c53552d6")
        );
        assert_eq!(
            call_ok("uuidv5", vec![s("url"), s("https://www.terraform.io/")]),
            s("9db6f67c-dd95-5ea0-aa5b-e70e5c5f7cf5")
        );
        assert_eq!(
            call_ok(
                "uuidv5",
                vec![
                    s("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
                    s("www.terraform.io")
                ]
            ),
            s("a5008fae-b28c-5ba5-96cd-82b4c53552d6")
        );
        assert!(
            call_err("uuidv5", vec![s("nope"), s("x")])
                .starts_with("`uuidv5`: uuidv5() doesn't support namespace nope (")
        );
    }

    #[test]
    fn rsadecrypt_decrypts_pkcs1v15() {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        // A throwaway key made for the test, in the PKCS#1 PEM form that
        // Packer's rsadecrypt reads.
        let mut rng = rand_for_tests();
        let key = rsa::RsaPrivateKey::new(&mut rng, 512).unwrap();
        let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        let pem: &str = &pem;
        let public = rsa::RsaPublicKey::from(&key);
        let ct = public
            .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"Hello, world!")
            .unwrap();
        let b64 = super::super::encoding::base64_encode(&ct);
        assert_eq!(
            call_ok("rsadecrypt", vec![s(&b64), s(pem)]),
            s("Hello, world!")
        );
        assert_eq!(
            call_err("rsadecrypt", vec![s("!!"), s(pem)]),
            "`rsadecrypt`: failed to decode input \"!!\": cipher text must be base64-encoded"
        );
        assert_eq!(
            call_err("rsadecrypt", vec![s(&b64), s("nope")]),
            "`rsadecrypt`: failed to parse key: no key found"
        );
        let encrypted = pem.replace(
            "-----BEGIN RSA PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n",
        );
        assert!(
            call_err("rsadecrypt", vec![s(&b64), s(&encrypted)])
                .contains("password protected keys are not supported")
        );
        assert_eq!(
            call_err("rsadecrypt", vec![s("AAAA"), s(pem)]),
            "`rsadecrypt`: crypto/rsa: decryption error"
        );
    }

    fn rand_for_tests() -> impl rsa::rand_core::CryptoRngCore {
        rsa::rand_core::OsRng
    }
}
