use super::*;

#[test]
fn smoke_guest_bytes_match_their_assembly_source() {
    let Ok(out) = std::process::Command::new("nasm").arg("-v").output() else {
        eprintln!("skipped: nasm not installed");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("smoke.asm");
    let bin = dir.path().join("smoke.bin");
    std::fs::write(&src, include_str!("smoke.asm")).unwrap();
    let st = std::process::Command::new("nasm")
        .args(["-f", "bin", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&bin).unwrap(), SMOKE_GUEST);
}

#[test]
fn rom_has_the_reset_vector() {
    let rom = smoke_rom();
    assert_eq!(rom.len(), 65536);
    assert_eq!(&rom[0xfff0..0xfff5], &[0xea, 0, 0, 0, 0xf0]);
    assert_eq!(&rom[..SMOKE_GUEST.len()], SMOKE_GUEST);
}

#[test]
fn missing_device_is_missing() {
    let v = check_kvm_device(Path::new("/nonexistent/kvm")).unwrap_err();
    assert!(matches!(v, AccelVerdict::Missing { .. }), "{v:?}");
}

#[test]
fn decisions_follow_the_verdict() {
    let works = AccelVerdict::Works { elapsed_ms: 80 };
    let broken = AccelVerdict::GuestsDoNotRun {
        reached: None,
        detail: "x".into(),
    };
    assert_eq!(
        decide_accelerator(None, &works).unwrap().accelerator,
        Accelerator::Kvm
    );
    let d = decide_accelerator(None, &broken).unwrap();
    assert_eq!(d.accelerator, Accelerator::Tcg);
    assert!(d.warning.unwrap().contains("slower"));
    assert!(decide_accelerator(Some(Accelerator::Kvm), &broken).is_err());
    assert_eq!(
        decide_accelerator(Some(Accelerator::Tcg), &broken)
            .unwrap()
            .accelerator,
        Accelerator::Tcg
    );
    let np = AccelVerdict::NoPermission {
        group: Some("kvm".into()),
        detail: "denied".into(),
    };
    assert!(np.summary().contains("usermod -aG kvm"));
}

#[test]
fn verdicts_round_trip_through_json() {
    let v = AccelVerdict::GuestsDoNotRun {
        reached: Some((SmokeStage::LongMode, 120)),
        detail: "slow".into(),
    };
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<AccelVerdict>(&json).unwrap(), v);
}
