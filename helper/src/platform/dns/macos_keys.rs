//! The pure half of the macOS DNS method ([`super::macos`]): reading SCDynamicStore key names.
//! No system call, so it is compiled and unit-tested on every OS (only macOS calls it).

/// `State:/Network/Service/<id>/...` → `<id>`.
pub(super) fn service_id(key: &str) -> Option<&str> {
    let rest = key
        .strip_prefix("State:/Network/Service/")
        .or_else(|| key.strip_prefix("Setup:/Network/Service/"))?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_come_from_state_and_setup_keys() {
        assert_eq!(
            service_id("State:/Network/Service/1C5B9E2A-0000/IPv4"),
            Some("1C5B9E2A-0000")
        );
        assert_eq!(service_id("Setup:/Network/Service/AB/DNS"), Some("AB"));
        assert_eq!(service_id("State:/Network/Global/DNS"), None);
        assert_eq!(service_id("State:/Network/Service//DNS"), None);
    }
}
