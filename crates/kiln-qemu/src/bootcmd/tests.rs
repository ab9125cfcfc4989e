use super::*;
use proptest::prelude::*;

fn press(c: char) -> BootItem {
    BootItem::Key {
        key: Key::Char(c),
        action: Action::Press,
    }
}

fn sp(s: Special, action: Action) -> BootItem {
    BootItem::Key {
        key: Key::Special(s),
        action,
    }
}

fn secs(n: u64) -> BootItem {
    BootItem::Wait(Duration::from_secs(n))
}

#[test]
fn every_special_key_parses_in_any_case() {
    for (name, key) in SPECIALS {
        for spelling in [name.to_string(), name.to_uppercase(), name.to_lowercase()] {
            let items = parse(&format!("<{spelling}>")).unwrap();
            assert_eq!(items, vec![sp(*key, Action::Press)], "<{spelling}>");
            let items = parse(&format!("<{spelling}On><{spelling}off>")).unwrap();
            assert_eq!(
                items,
                vec![sp(*key, Action::Down), sp(*key, Action::Up)],
                "{spelling}"
            );
        }
    }
}

#[test]
fn waits_in_every_form() {
    assert_eq!(parse("<wait>").unwrap(), vec![secs(1)]);
    assert_eq!(parse("<wait5>").unwrap(), vec![secs(5)]);
    assert_eq!(parse("<wait10>").unwrap(), vec![secs(10)]);
    assert_eq!(parse("<wait3s>").unwrap(), vec![secs(3)]);
    assert_eq!(parse("<wait1m30s>").unwrap(), vec![secs(90)]);
    assert_eq!(
        parse("<wait250ms>").unwrap(),
        vec![BootItem::Wait(Duration::from_millis(250))]
    );
    assert_eq!(
        parse("<wait0.5s>").unwrap(),
        vec![BootItem::Wait(Duration::from_millis(500))]
    );
    assert!(parse("<wait0>").is_err());
    assert!(parse("<wait0s>").is_err());
    assert!(parse("<wait-1s>").is_err());
}

#[test]
fn malformed_expressions_are_typed_literally() {
    let lit = |s: &str| s.chars().map(press).collect::<Vec<_>>();
    // `wait` is case-sensitive in Packer's grammar; `05` is not an Integer.
    assert_eq!(parse("<WAIT>").unwrap(), lit("<WAIT>"));
    assert_eq!(parse("<wait05>").unwrap(), lit("<wait05>"));
    assert_eq!(parse("<wait1m5>").unwrap(), lit("<wait1m5>"));
    assert_eq!(parse("<delete>").unwrap(), lit("<delete>"));
    assert_eq!(parse("a < b > c").unwrap(), lit("a < b > c"));
    assert_eq!(parse("<").unwrap(), lit("<"));
    assert_eq!(
        parse("<<enter>").unwrap(),
        vec![press('<'), sp(Special::Enter, Action::Press)]
    );
}

#[test]
fn single_characters_toggle() {
    assert_eq!(
        parse("<leftCtrlOn>c<leftCtrlOff>").unwrap(),
        vec![
            sp(Special::LeftCtrl, Action::Down),
            press('c'),
            sp(Special::LeftCtrl, Action::Up)
        ]
    );
    assert_eq!(
        parse("<aOn><aOff>").unwrap(),
        vec![
            BootItem::Key {
                key: Key::Char('a'),
                action: Action::Down
            },
            BootItem::Key {
                key: Key::Char('a'),
                action: Action::Up
            }
        ]
    );
    // `f` + `1On` is not a char toggle; `<f1On>` is the F1 key held.
    assert_eq!(
        parse("<f1On>").unwrap(),
        vec![sp(Special::F(1), Action::Down)]
    );
    assert_eq!(
        parse("<f10>").unwrap(),
        vec![sp(Special::F(10), Action::Press)]
    );
}

#[test]
fn a_typical_installer_command() {
    let items = parse("<esc><wait>fs0:<enter>vmlinuz initrd=\\initrd.img ds=nocloud-net;s=http://10.0.2.2:8000/<enter>").unwrap();
    assert_eq!(items[0], sp(Special::Esc, Action::Press));
    assert_eq!(items[1], secs(1));
    assert_eq!(
        to_string(&items),
        "<esc><wait1s>fs0:<enter>vmlinuz initrd=\\initrd.img ds=nocloud-net;s=http://10.0.2.2:8000/<enter>"
    );
}

#[test]
fn us_layout_shifts_what_needs_shift() {
    let st = strokes(&parse("aZ:_ /<enter>").unwrap()).unwrap();
    assert_eq!(
        st,
        vec![
            KeyStroke::Press(vec!["a"]),
            KeyStroke::Press(vec!["shift", "z"]),
            KeyStroke::Press(vec!["shift", "semicolon"]),
            KeyStroke::Press(vec!["shift", "minus"]),
            KeyStroke::Press(vec!["spc"]),
            KeyStroke::Press(vec!["slash"]),
            KeyStroke::Press(vec!["ret"]),
        ]
    );
    for c in (0x20u8..0x7f).map(char::from) {
        assert!(char_qcode(c).is_some(), "{c:?} has no key");
    }
    // Packer's shifted set.
    for c in "~!@#$%^&*()_+{}|:\"<>?".chars() {
        assert!(char_qcode(c).unwrap().1, "{c:?} needs shift");
    }
    assert_eq!(
        strokes(&parse("é").unwrap()),
        Err(BootCommandError::Untypable { ch: 'é' })
    );
}

#[test]
fn held_shifted_character_holds_shift_too() {
    let st = strokes(&parse("<AOn><AOff>").unwrap()).unwrap();
    assert_eq!(
        st,
        vec![
            KeyStroke::Hold {
                qcode: "shift",
                down: true
            },
            KeyStroke::Hold {
                qcode: "a",
                down: true
            },
            KeyStroke::Hold {
                qcode: "a",
                down: false
            },
            KeyStroke::Hold {
                qcode: "shift",
                down: false
            },
        ]
    );
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<".to_string()),
        Just(">".to_string()),
        Just("wait".to_string()),
        Just("On".to_string()),
        Just("off".to_string()),
        Just("enter".to_string()),
        Just("f1".to_string()),
        Just("leftShift".to_string()),
        Just("1m".to_string()),
        Just("0".to_string()),
        Just("5".to_string()),
        Just("s".to_string()),
        Just(".".to_string()),
        Just("-".to_string()),
        Just("<wait>".to_string()),
        Just("<enter>".to_string()),
        "[a-zA-Z0-9 :/_=;~]{1,3}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

proptest! {
    #[test]
    fn parse_never_panics_and_printing_round_trips(parts in prop::collection::vec(fragment(), 0..24)) {
        let input = parts.concat();
        if let Ok(items) = parse(&input) {
            let printed = to_string(&items);
            let reparsed = parse(&printed);
            prop_assert_eq!(reparsed, Ok(items), "input {:?} printed {:?}", input, printed);
        }
    }

    #[test]
    fn plain_text_types_itself(text in "[ -;=?-~]{0,40}") {
        // Without `<`, every character is a key press.
        let items = parse(&text).unwrap();
        prop_assert_eq!(items.len(), text.chars().count());
    }
}

#[test]
fn unknown_keys_name_the_closest_key_when_misspelled() {
    let found = unknown_keys("<esc><wiat5>linux<entr><leftCtrlOn>c<leftCtrlOff><wait>");
    assert_eq!(
        found,
        vec![
            UnknownKey {
                text: "<wiat5>".into(),
                suggestion: Some("<wait5>".into()),
            },
            UnknownKey {
                text: "<entr>".into(),
                suggestion: Some("<enter>".into()),
            },
        ]
    );
    // The misspelling really is typed literally, as Packer does.
    assert_eq!(parse("<wiat5>").unwrap().len(), 7);
}

#[test]
fn unknown_keys_ignore_text_that_is_no_key_name() {
    assert!(unknown_keys("a < b > c <1> <-x> <a> <x y> <pageup><F12><aOn>").is_empty());
    assert_eq!(
        unknown_keys("<frobnicate>"),
        vec![UnknownKey {
            text: "<frobnicate>".into(),
            suggestion: None,
        }]
    );
    assert_eq!(
        unknown_keys("<leftCtlOn>")[0].suggestion.as_deref(),
        Some("<leftCtrlOn>")
    );
}
