use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn label_operators() {
    let prod = labels(&[("env", "prod"), ("tier", "web"), ("meseta.io/job", "j1"), ("n", "5"), ("blank", "")]);
    let none = labels(&[]);
    // (selector, matches `prod`, matches the empty map)
    let table: &[(&str, bool, bool)] = &[
        ("", true, true),
        ("   ", true, true),
        ("env=prod", true, false),
        ("env==prod", true, false),
        ("env=dev", false, false),
        ("env!=dev", true, true),
        ("env!=prod", false, true),
        ("env in (prod,dev)", true, false),
        ("env in (dev)", false, false),
        ("env notin (dev,qa)", true, true),
        ("env notin (prod)", false, true),
        ("env", true, false),
        ("!env", false, true),
        ("missing", false, false),
        ("!missing", true, true),
        ("meseta.io/job=j1", true, false),
        ("meseta.io/job in (j1)", true, false),
        ("blank=", true, false),
        ("blank==", true, false),
        ("blank!=", false, true),
        ("blank in ()", true, false),
        ("blank in (,x)", true, false),
        ("env=prod,tier=web", true, false),
        ("env=prod,tier=db", false, false),
        (" env = prod , tier in ( web , api ) , !canary ", true, false),
        ("n>4", true, false),
        ("n>5", false, false),
        ("n<6", true, false),
        ("env>1", false, false),
        ("env=in", false, false),
        ("env notin (in,notin)", true, true),
    ];
    for (sel, want_prod, want_none) in table {
        let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
        assert_eq!(s.matches(&prod), *want_prod, "{sel:?} on prod");
        assert_eq!(s.matches(&none), *want_none, "{sel:?} on empty");
        assert_eq!(s.is_empty(), sel.trim().is_empty(), "{sel:?} is_empty");
    }
}

#[test]
fn label_errors_name_the_bad_part() {
    let table: &[(&str, &str)] = &[
        ("env in prod", "unable to parse requirement: found 'prod', expected: '(' in \"env in prod\""),
        ("env in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("env in (a b)", "found 'b', expected: ',' or ')'"),
        ("env in (a,=)", "found '=', expected: ',', ')' or identifier"),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b c=d", "found 'c', expected: ',' or 'end of string'"),
        ("=b", "found '=', expected: !, identifier, or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=(b)", "found '(', expected: identifier"),
        ("Bad_Prefix/x=1", "invalid label key \"Bad_Prefix/x\": prefix part must be a lowercase RFC 1123 subdomain"),
        ("a/b/c", "invalid label key \"a/b/c\""),
        ("/x", "prefix part must be non-empty"),
        ("p/", "name part must be non-empty"),
        ("-x", "invalid label key \"-x\": name part must consist of alphanumeric characters"),
        ("a=-v", "invalid value \"-v\" for label \"a\""),
        ("a=b/c", "invalid value \"b/c\" for label \"a\""),
        ("n>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
        ("n>-1", "invalid value \"-1\" for label \"n\""),
    ];
    for (sel, want) in table {
        let err = LabelSelector::parse(sel).expect_err(sel).to_string();
        assert!(err.contains(want), "{sel:?}: got {err:?}, want it to contain {want:?}");
        assert!(err.ends_with(&format!("in {sel:?}")), "{sel:?}: {err:?} should quote the selector");
    }
    let long = format!("a={}", "v".repeat(64));
    assert!(LabelSelector::parse(&long).unwrap_err().to_string().contains("no more than 63 characters"));
}

#[test]
fn label_render_is_canonical() {
    let s = LabelSelector::parse(" tier in (web, api) ,env=prod,!canary,x notin (b,a,b)").unwrap();
    assert_eq!(s.to_string(), "!canary,env=prod,tier in (api,web),x notin (a,b)");
    assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
    assert_eq!(s.requires_exact("env"), Some("prod"));
    assert_eq!(s.requires_exact("tier"), None);
    assert_eq!(s.requires_exact("nope"), None);
    let r = &s.requirements()[2];
    assert_eq!((r.key(), r.op(), r.values()), ("tier", LabelOp::In, &["api".to_owned(), "web".to_owned()][..]));
}

#[test]
fn field_operators() {
    let task = json!({
        "metadata": {"name": "t1", "namespace": "ops"},
        "spec": {"agent": "a1", "framework": null, "replicas": 3, "production": true, "ports": [80, 443]},
        "status": {"state": "RUNNING", "message": "a,b=c\\d"},
    });
    let table: &[(&str, bool)] = &[
        ("", true),
        ("metadata.name=t1", true),
        ("metadata.name==t1", true),
        ("metadata.name!=t1", false),
        ("metadata.name=t2", false),
        ("metadata.namespace=ops,spec.agent=a1", true),
        ("metadata.namespace=ops,spec.agent=a2", false),
        ("spec.framework=", true),
        ("spec.missing=", true),
        ("spec.missing!=", false),
        ("spec.missing.deeper=", true),
        ("spec.agent.deeper=", true),
        ("spec.replicas=3", true),
        ("spec.production=true", true),
        ("spec.production!=false", true),
        ("spec.ports.1=443", true),
        ("status.state!=FINISHED", true),
        (" status.state = RUNNING ", true),
        ("status.message=a\\,b\\=c\\\\d", true),
        ("a=1,,", false),
    ];
    for (sel, want) in table {
        let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
        assert_eq!(s.matches(&task), *want, "{sel:?}");
    }
}

#[test]
fn field_requirements_and_exact() {
    let s = FieldSelector::parse("status.state!=FAILED,spec.agent=a1,metadata.name==x").unwrap();
    let got: Vec<_> = s.requirements().collect();
    assert_eq!(
        got,
        vec![
            ("metadata.name", FieldOp::Equals, "x"),
            ("spec.agent", FieldOp::Equals, "a1"),
            ("status.state", FieldOp::NotEquals, "FAILED"),
        ]
    );
    assert_eq!(s.exact("spec.agent"), Some("a1"));
    assert_eq!(s.exact("status.state"), None);
    assert_eq!(s.to_string(), "metadata.name=x,spec.agent=a1,status.state!=FAILED");
    assert!(FieldSelector::parse("").unwrap().is_empty());
    assert!(!s.is_empty());
}

#[test]
fn field_errors_name_the_bad_part() {
    let table: &[(&str, &str)] = &[
        ("metadata.name", "can't understand 'metadata.name': expected path=value, path==value or path!=value"),
        ("=x", "the field path is empty"),
        ("spec..agent=x", "invalid field path 'spec..agent'"),
        ("a=b=c", "unescaped '='"),
        ("a=b\\x", "invalid escape sequence '\\x'"),
        ("a=b\\", "a trailing '\\' escapes nothing"),
    ];
    for (sel, want) in table {
        let err = FieldSelector::parse(sel).expect_err(sel).to_string();
        assert!(err.contains(want), "{sel:?}: got {err:?}, want it to contain {want:?}");
        assert!(err.ends_with(&format!("in {sel:?}")), "{sel:?}: {err:?} should quote the selector");
    }
}

/// A valid label key: optional DNS prefix, then a name.
fn key() -> impl Strategy<Value = String> {
    (prop::option::of("[a-z]{1,3}(\\.[a-z0-9]{1,3})?"), "[a-zA-Z0-9]([a-z0-9._-]{0,3}[a-z0-9])?")
        .prop_map(|(p, n)| p.map_or(n.clone(), |p| format!("{p}/{n}")))
}

/// A valid label value, often empty, sometimes a keyword.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("in".to_owned()), "[a-z0-9]([a-z0-9._-]{0,3}[a-z0-9])?"]
}

/// Keys and values from small pools so generated maps and selectors collide often.
fn small_key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("meseta.io/job".to_owned()), key()]
}

fn small_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("x".to_owned()), Just("y".to_owned()), Just("7".to_owned()), value()]
}

fn requirement() -> impl Strategy<Value = LabelRequirement> {
    let op = prop_oneof![
        Just(LabelOp::Equals),
        Just(LabelOp::DoubleEquals),
        Just(LabelOp::NotEquals),
        Just(LabelOp::In),
        Just(LabelOp::NotIn),
        Just(LabelOp::Exists),
        Just(LabelOp::DoesNotExist),
        Just(LabelOp::GreaterThan),
        Just(LabelOp::LessThan),
    ];
    (small_key(), op, vec(small_value(), 1..4), 0i64..10).prop_map(|(k, op, vals, n)| {
        let vals = match op {
            LabelOp::Exists | LabelOp::DoesNotExist => vec![],
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::NotEquals => vals[..1].to_vec(),
            LabelOp::GreaterThan | LabelOp::LessThan => vec![n.to_string()],
            LabelOp::In | LabelOp::NotIn => vals,
        };
        LabelRequirement::new(&k, op, vals).expect("generated requirement is valid")
    })
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(small_key(), small_value(), 0..5)
}

proptest! {
    #[test]
    fn label_selector_round_trips(reqs in vec(requirement(), 0..5), maps in vec(label_map(), 1..8)) {
        let original = LabelSelector::from_requirements(reqs);
        let text = original.to_string();
        let parsed = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &original, "rendered as {:?}", text);
        for m in &maps {
            prop_assert_eq!(parsed.matches(m), original.matches(m), "{:?} on {:?}", text, m);
        }
    }

    #[test]
    fn not_equals_is_negated_equals(k in small_key(), v in small_value(), m in label_map()) {
        let eq = LabelSelector::parse(&format!("{k}={v}")).unwrap();
        let ne = LabelSelector::parse(&format!("{k}!={v}")).unwrap();
        let notin = LabelSelector::parse(&format!("{k} notin ({v})")).unwrap();
        prop_assert_eq!(ne.matches(&m), !eq.matches(&m));
        prop_assert_eq!(notin.matches(&m), !eq.matches(&m));
    }

    #[test]
    fn field_selector_round_trips(
        terms in vec(("[a-z]{1,4}(\\.[a-z]{1,4}){0,2}", any::<bool>(), "[a-z,=\\\\!]{0,5}"), 0..4),
    ) {
        let text = terms
            .iter()
            .map(|(p, ne, v)| {
                let v = v.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=");
                format!("{p}{}{v}", if *ne { "!=" } else { "=" })
            })
            .collect::<Vec<_>>()
            .join(",");
        let parsed = FieldSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let again = FieldSelector::parse(&parsed.to_string()).unwrap();
        prop_assert_eq!(&again, &parsed);
        // Terms come back sorted, so check membership rather than position.
        for (p, ne, v) in &terms {
            let want = (p.as_str(), if *ne { FieldOp::NotEquals } else { FieldOp::Equals }, v.as_str());
            prop_assert!(parsed.requirements().any(|r| r == want), "{:?} missing from {:?}", want, text);
        }
    }
}
