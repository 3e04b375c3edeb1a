//! The parameters yubin implements, with their defaults.
//!
//! Defaults are Postfix 3.7's (`postconf -d`) at `compatibility_level = 3.6`,
//! the level Debian's main.cf sets, so that a site's main.cf means the same to
//! yubin as to its Postfix. The defaults that depend on the level are written
//! exactly as Postfix 3.7's `postconf -d` prints them (relational
//! expressions, COMPATIBILITY_README), so a main.cf that sets a lower level
//! gets Postfix's backwards-compatible values. Where yubin's default must differ (its own spool
//! and log paths, `mail_name`) the entry says so.

/// A known parameter: its name, its default (unexpanded, Postfix syntax) and
/// the manual page that defines it.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub default: &'static str,
}

macro_rules! params {
    ($($name:literal => $default:literal,)*) => {
        /// Every parameter yubin reads, sorted by name (binary search).
        pub const PARAMS: &[Param] = &[$(Param { name: $name, default: $default },)*];
    };
}

// Keep sorted: `known_params_are_sorted` checks it.
params! {
    "2bounce_notice_recipient" => "postmaster",
    "access_map_defer_code" => "450",
    "access_map_reject_code" => "554",
    "alias_database" => "hash:/etc/aliases",
    "alias_maps" => "hash:/etc/aliases",
    "allow_mail_to_commands" => "alias, forward",
    "allow_mail_to_files" => "alias, forward",
    "append_dot_mydomain" => "${{$compatibility_level} <level {1} ? {yes} : {no}}",
    "biff" => "no",
    "bounce_notice_recipient" => "postmaster",
    "bounce_queue_lifetime" => "5d",
    "bounce_template_file" => "",
    "broken_sasl_auth_clients" => "no",
    "command_directory" => "/usr/sbin",
    "command_time_limit" => "1000s",
    "compatibility_level" => "0",
    "config_directory" => "/etc/yubin",
    "daemon_directory" => "/usr/lib/yubin",
    "data_directory" => "/var/lib/yubin",
    "default_database_type" => "hash",
    "default_destination_concurrency_limit" => "20",
    "default_destination_recipient_limit" => "50",
    "default_privs" => "nobody",
    "default_process_limit" => "100",
    "default_rbl_reply" => "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}",
    "default_transport" => "smtp",
    "defer_code" => "450",
    "defer_transports" => "",
    "delay_notice_recipient" => "postmaster",
    "delay_warning_time" => "0h",
    "disable_vrfy_command" => "no",
    "dns_servers" => "",
    "double_bounce_sender" => "double-bounce",
    "duplicate_filter_limit" => "1000",
    "empty_address_default_transport_maps_lookup_key" => "<>",
    "empty_address_relayhost_maps_lookup_key" => "<>",
    "enable_long_queue_ids" => "no",
    "enable_original_recipient" => "yes",
    "error_notice_recipient" => "postmaster",
    "home_mailbox" => "",
    // yubin's IMAP service (master.cf command "imap"), named after Dovecot's
    // settings: imap_max_line_length, auth_failure_delay, rawlog_dir,
    // mail_max_userip_connections,
    // disable_plaintext_auth; imapd_append_limit is RFC 7889 APPENDLIMIT
    // (0 = no limit of yubin's own).
    "imap_max_line_length" => "65536",
    "imapd_append_limit" => "$message_size_limit",
    "imapd_auth_failure_delay" => "2s",
    "imapd_disable_plaintext_auth" => "yes",
    "imapd_max_userip_connections" => "10",
    "imapd_rawlog_dir" => "",
    "imapd_timeout" => "30m",
    "imapd_tls_wrappermode" => "no",
    "inet_interfaces" => "all",
    "inet_protocols" => "all",
    "invalid_hostname_reject_code" => "501",
    "lmtp_destination_recipient_limit" => "$default_destination_recipient_limit",
    "local_recipient_maps" => "proxy:unix:passwd.byname $alias_maps",
    "local_transport" => "local:$myhostname",
    "mail_name" => "yubin",
    "mail_owner" => "postfix",
    "mail_spool_directory" => "/var/mail",
    "mailbox_size_limit" => "51200000",
    "mailbox_transport" => "",
    "maillog_file" => "",
    "maps_rbl_reject_code" => "554",
    "maximal_backoff_time" => "4000s",
    "maximal_queue_lifetime" => "5d",
    "message_size_limit" => "10240000",
    // Milters (MILTER_README): begin
    "milter_command_timeout" => "30s",
    "milter_connect_macros" => "j {daemon_name} {daemon_addr} v _",
    "milter_connect_timeout" => "30s",
    "milter_content_timeout" => "300s",
    "milter_data_macros" => "i",
    "milter_default_action" => "tempfail",
    "milter_end_of_data_macros" => "i",
    "milter_end_of_header_macros" => "i",
    "milter_helo_macros" => "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "milter_macro_daemon_name" => "$myhostname",
    // Postfix: "$mail_name $mail_version"; yubin has no mail_version parameter.
    "milter_macro_v" => "$mail_name",
    "milter_mail_macros" => "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    "milter_protocol" => "6",
    "milter_rcpt_macros" => "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    // Milters: end
    "minimal_backoff_time" => "300s",
    // yubin extensions: message authentication (docs/msgauth.md).
    "msgauth_authserv_id" => "$myhostname",
    "msgauth_enable" => "no",
    "msgauth_max_signatures" => "10",
    "msgauth_time_limit" => "20s",
    "mydestination" => "$myhostname, localhost.$mydomain, localhost",
    "mydomain" => "",
    "myhostname" => "",
    "mynetworks" => "",
    "mynetworks_style" => "${{$compatibility_level} <level {2} ? {subnet} : {host}}",
    "myorigin" => "$myhostname",
    "non_fqdn_reject_code" => "504",
    "non_smtpd_milters" => "",
    "notify_classes" => "resource, software",
    "parent_domain_matches_subdomains" => "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
    "propagate_unmatched_extensions" => "canonical, virtual",
    "proxy_interfaces" => "",
    "queue_directory" => "/var/spool/yubin",
    "queue_minfree" => "0",
    "queue_run_delay" => "300s",
    "rbl_reply_maps" => "",
    "readme_directory" => "no",
    "recipient_delimiter" => "",
    "reject_code" => "554",
    "relay_domains" => "${{$compatibility_level} <level {2} ? {$mydestination} : {}}",
    "relay_recipient_maps" => "",
    "relay_transport" => "relay",
    "relayhost" => "",
    "sender_dependent_default_transport_maps" => "",
    "sender_dependent_relayhost_maps" => "",
    "smtp_address_preference" => "any",
    "smtp_connect_timeout" => "30s",
    "smtp_connection_cache_destinations" => "",
    "smtp_connection_cache_on_demand" => "yes",
    "smtp_connection_cache_time_limit" => "2s",
    "smtp_connection_reuse_count_limit" => "0",
    "smtp_connection_reuse_time_limit" => "300s",
    "smtp_data_done_timeout" => "600s",
    "smtp_data_init_timeout" => "120s",
    "smtp_data_xfer_timeout" => "180s",
    "smtp_destination_concurrency_limit" => "$default_destination_concurrency_limit",
    "smtp_destination_recipient_limit" => "$default_destination_recipient_limit",
    "smtp_helo_name" => "$myhostname",
    "smtp_helo_timeout" => "300s",
    "smtp_mail_timeout" => "300s",
    "smtp_mx_address_limit" => "5",
    "smtp_mx_session_limit" => "2",
    "smtp_quit_timeout" => "300s",
    "smtp_rcpt_timeout" => "300s",
    "smtp_rset_timeout" => "20s",
    "smtp_sasl_auth_enable" => "no",
    "smtp_sasl_password_maps" => "",
    "smtp_sasl_security_options" => "noplaintext, noanonymous",
    "smtp_sasl_tls_security_options" => "$smtp_sasl_security_options",
    "smtp_skip_5xx_greeting" => "yes",
    "smtp_starttls_timeout" => "300s",
    "smtp_tls_CAfile" => "",
    "smtp_tls_policy_maps" => "",
    "smtp_tls_security_level" => "",
    "smtpd_banner" => "$myhostname ESMTP $mail_name",
    "smtpd_client_connection_count_limit" => "50",
    "smtpd_client_restrictions" => "",
    "smtpd_delay_reject" => "yes",
    "smtpd_end_of_data_restrictions" => "",
    "smtpd_error_sleep_time" => "1s",
    "smtpd_hard_error_limit" => "20",
    "smtpd_helo_required" => "no",
    "smtpd_helo_restrictions" => "",
    "smtpd_junk_command_limit" => "100",
    "smtpd_milters" => "",
    "smtpd_null_access_lookup_key" => "<>",
    "smtpd_policy_service_default_action" => "451 4.3.5 Server configuration problem",
    "smtpd_policy_service_max_idle" => "300s",
    "smtpd_policy_service_max_ttl" => "1000s",
    "smtpd_policy_service_request_limit" => "0",
    "smtpd_policy_service_retry_delay" => "1s",
    "smtpd_policy_service_timeout" => "100s",
    "smtpd_policy_service_try_limit" => "2",
    "smtpd_recipient_limit" => "1000",
    "smtpd_recipient_restrictions" => "",
    "smtpd_relay_before_recipient_restrictions" => "${{$compatibility_level} <level {3.6} ? {no} : {yes}}",
    "smtpd_relay_restrictions" => "${{$compatibility_level} <level {1} ? {} : {permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}",
    "smtpd_sasl_auth_enable" => "no",
    "smtpd_sasl_authenticated_header" => "no",
    "smtpd_sasl_mechanisms" => "PLAIN, LOGIN",
    "smtpd_sasl_path" => "smtpd",
    "smtpd_sasl_security_options" => "noanonymous",
    "smtpd_sasl_service" => "smtp",
    "smtpd_sasl_tls_security_options" => "$smtpd_sasl_security_options",
    "smtpd_sasl_type" => "passwd-file",
    "smtpd_sender_login_maps" => "",
    "smtpd_sender_restrictions" => "",
    "smtpd_soft_error_limit" => "10",
    "smtpd_timeout" => "300s",
    "smtpd_tls_auth_only" => "yes",
    "smtpd_tls_cert_file" => "",
    "smtpd_tls_chain_files" => "",
    "smtpd_tls_key_file" => "$smtpd_tls_cert_file",
    "smtpd_tls_loglevel" => "0",
    "smtpd_tls_mandatory_protocols" => "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
    "smtpd_tls_protocols" => "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
    "smtpd_tls_received_header" => "no",
    "smtpd_tls_security_level" => "",
    "smtpd_tls_wrappedmode" => "no",
    "smtputf8_enable" => "${{$compatibility_level} <level {1} ? {no} : {yes}}",
    "strict_rfc821_envelopes" => "no",
    "syslog_name" => "postfix",
    "transport_maps" => "",
    "unknown_address_reject_code" => "450",
    "unknown_client_reject_code" => "450",
    "unknown_hostname_reject_code" => "450",
    "unknown_local_recipient_reject_code" => "550",
    "virtual_alias_domains" => "$virtual_alias_maps",
    "virtual_alias_expansion_limit" => "1000",
    "virtual_alias_maps" => "$virtual_maps",
    "virtual_alias_recursion_limit" => "1000",
    "virtual_gid_maps" => "",
    "virtual_mailbox_base" => "",
    "virtual_mailbox_domains" => "$virtual_mailbox_maps",
    "virtual_mailbox_limit" => "51200000",
    "virtual_mailbox_maps" => "",
    "virtual_maps" => "",
    "virtual_minimum_uid" => "100",
    "virtual_transport" => "virtual",
    "virtual_uid_maps" => "",
    "yubin_dkim_signing_maps" => "",
    "yubin_mta_sts_CAfile" => "/etc/ssl/certs/ca-certificates.crt",
    "yubin_mta_sts_enable" => "no",
    "yubin_notice_interval" => "10m",
}

/// Looks a parameter up by name.
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS
        .binary_search_by(|p| p.name.cmp(name))
        .ok()
        .map(|i| &PARAMS[i])
}

/// `myhostname`'s default: the host name, made fully qualified with
/// `.localdomain` when it has no dot (postconf(5) myhostname/mydomain).
pub fn host_name() -> String {
    let name = yubin_sys::hostname();
    match name.as_str() {
        "" => "localhost.localdomain".into(),
        n if n.contains('.') => name,
        n => format!("{n}.localdomain"),
    }
}

/// The defaults that compatibility_level changes (COMPATIBILITY_README), as
/// (parameter, the level from which the new default applies).
pub const COMPAT_DEPENDENT: &[(&str, &str)] = &[
    ("append_dot_mydomain", "1"),
    ("smtputf8_enable", "1"),
    ("smtpd_relay_restrictions", "1"),
    ("mynetworks_style", "2"),
    ("relay_domains", "2"),
    ("smtpd_relay_before_recipient_restrictions", "3.6"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_params_are_sorted() {
        for w in PARAMS.windows(2) {
            assert!(w[0].name < w[1].name, "{} >= {}", w[0].name, w[1].name);
        }
        assert_eq!(find("myorigin").unwrap().default, "$myhostname");
        assert!(find("no_such_param").is_none());
    }
}
