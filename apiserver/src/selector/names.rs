//! Syntax of label keys and label values, as Kubernetes validates them inside selectors.
//!
//! A key is `[prefix/]name`: `name` is at most 63 characters of `[A-Za-z0-9-_.]` starting and
//! ending with an alphanumeric; `prefix` is a lowercase RFC 1123 DNS subdomain of at most 253
//! characters. A value is empty, or at most 63 characters following the same rule as `name`.

const NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
                         alphanumeric character";

/// Checks a label key; the error says which part is wrong and why.
pub(super) fn check_label_key(key: &str) -> Result<(), String> {
    let mut parts = key.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => return Err(format!("invalid label key {key:?}: a key is a name with an optional DNS prefix and one '/'")),
    };
    if let Some(prefix) = prefix {
        check_subdomain(prefix).map_err(|why| format!("invalid label key {key:?}: prefix part {why}"))?;
    }
    if name.is_empty() {
        return Err(format!("invalid label key {key:?}: name part must be non-empty"));
    }
    check_name(name).map_err(|why| format!("invalid label key {key:?}: name part {why}"))
}

/// Checks a label value (the empty value is valid).
pub(super) fn check_label_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value).map_err(|why| format!("invalid value {value:?} for label {key:?}: a label value {why}"))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > NAME_MAX {
        return Err(format!("must be no more than {NAME_MAX} characters"));
    }
    let bytes = name.as_bytes();
    let inner_ok = bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok =
        bytes.first().is_some_and(u8::is_ascii_alphanumeric) && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(NAME_RULE.to_owned())
    }
}

fn check_subdomain(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("must be non-empty".to_owned());
    }
    if prefix.len() > SUBDOMAIN_MAX {
        return Err(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter().all(|c| alnum(c) || *c == b'-')
    };
    if prefix.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', starting and \
             ending with an alphanumeric character"
            .to_owned())
    }
}
