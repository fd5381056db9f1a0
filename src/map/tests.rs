use super::*;

#[test]
fn handle_api_basics() {
    let map = HashMap::new();
    let m = map.pin();
    assert!(m.is_empty());
    assert_eq!(m.insert("a".to_string(), 1), None);
    assert_eq!(m.insert("a".to_string(), 2), Some(&1));
    assert_eq!(m.get("a"), Some(&2));
    assert_eq!(m.get_key_value("a"), Some((&"a".to_string(), &2)));
    assert!(m.contains_key("a"));
    assert_eq!(m.get_or_insert("b".into(), 5), &5);
    assert_eq!(m.get_or_insert_with("b".into(), || unreachable!()), &5);
    assert_eq!(m.update("b", |v| v + 1), Some(&6));
    assert_eq!(m.update("zz", |v| v + 1), None);
    assert_eq!(m.update_or_insert("c".into(), |v| v + 1, 0), &0);
    assert_eq!(m.update_or_insert("c".into(), |v| v + 1, 0), &1);
    assert_eq!(m.len(), 3);
    assert_eq!(m.remove_entry("c"), Some((&"c".to_string(), &1)));
    assert_eq!(m.remove("c"), None);
    let mut keys: Vec<_> = m.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(m.values().sum::<i32>(), 8);
    m.clear();
    assert!(m.is_empty());
}

#[test]
fn traits() {
    let a: HashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
    let b = a.clone();
    assert_eq!(a, b);
    b.insert(0, 1);
    assert_ne!(a, b);
    assert!(format!("{a:?}").starts_with('{'));
    let d: HashMap<u8, u8> = HashMap::default();
    assert!(d.is_empty());
    let mut e = HashMap::new();
    e.extend([(1, 1), (2, 2)]);
    let mut r = &e;
    r.extend([(3, 3)]);
    assert_eq!(e.len(), 3);
    e.clear_mut();
    assert!(e.is_empty());
}

#[test]
#[should_panic(expected = "capacity overflow")]
fn capacity_overflow_panics() {
    let _m: HashMap<u64, u64> = HashMap::with_capacity(usize::MAX / 2);
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn send_sync() {
    assert_send_sync::<HashMap<String, Vec<u8>>>();
}
