//! `Validate` for every kind: what a user may submit.
//!
//! Owns per-kind rules (names, non-negative resources, required commands,
//! enum-dependent fields, placement constraints, quota bounds). Every rule
//! pushes a `FieldError` naming the field and saying what to do, and every
//! rule runs: one object reports all its violations at once. Nothing here
//! looks at other objects or the store, and nothing checks task state
//! changes (see `state_machine`).

use std::collections::BTreeSet;

use crate::kinds::*;
use crate::resource::Resource;
use crate::resources::{Resources, SCALARS};
use crate::validation::{
    cron_schedule, dns1123_label, dns1123_subdomain, join, non_negative, validate_meta, FieldError, Validate,
};

impl Validate for Resources {
    fn validate_into(&self, path: &str, errs: &mut Vec<FieldError>) {
        for (name, v) in SCALARS.iter().zip(self.scalar_values()) {
            non_negative(&join(path, name), v, errs);
        }
        if self.gpus.fract() != 0.0 && self.gpus.is_finite() {
            errs.push(FieldError::invalid(join(path, "gpus"), self.gpus, "must be a whole number of GPUs"));
        }
        for (i, r) in self.ports.iter().enumerate() {
            let p = format!("{}[{i}]", join(path, "ports"));
            if r.begin == 0 {
                errs.push(FieldError::invalid(format!("{p}.begin"), r.begin, "must be between 1 and 65535"));
            }
            if r.end < r.begin {
                errs.push(FieldError::invalid(
                    format!("{p}.end"),
                    r.end,
                    format!("must be >= begin ({}); a range is begin..=end", r.begin),
                ));
            }
        }
    }
}

fn validate_object_meta<K: Resource>(obj: &K, errs: &mut Vec<FieldError>) {
    validate_meta(obj.meta(), K::NAMESPACED, errs);
}

fn validate_program(spec: &TaskSpec, path: &str, errs: &mut Vec<FieldError>) {
    match &spec.command {
        None if spec.args.is_empty() => errs.push(FieldError::required(
            join(path, "command"),
            "set command (a shell line run by /bin/sh -c) or args (a program and its arguments, run without a shell)",
        )),
        Some(c) if c.trim().is_empty() => errs.push(FieldError::invalid(
            join(path, "command"),
            format!("{c:?}"),
            "must not be empty; set a shell line such as \"echo hello\", or use args",
        )),
        _ => {}
    }
    if spec.command.is_some() && !spec.args.is_empty() {
        errs.push(FieldError::forbidden(
            join(path, "args"),
            "set either command (shell form) or args (exec form), not both",
        ));
    }
    if spec.args.first().is_some_and(|a| a.is_empty()) {
        errs.push(FieldError::invalid(
            format!("{}[0]", join(path, "args")),
            "\"\"",
            "args[0] is the program to run and must not be empty",
        ));
    }
}

fn validate_ports(spec: &TaskSpec, path: &str, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    let mut fixed = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let pp = format!("{}[{i}]", join(path, "ports"));
        if !p.name.is_empty() {
            if !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                errs.push(FieldError::invalid(
                    format!("{pp}.name"),
                    format!("{:?}", p.name),
                    "may contain only letters, digits, '-' and '_' (it becomes the variable PORT_<NAME>)",
                ));
            }
            if !names.insert(p.name.as_str()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), format!("{:?}", p.name)));
            }
        }
        if p.port != 0 && !fixed.insert(p.port) {
            errs.push(FieldError::duplicate(format!("{pp}.port"), p.port));
        }
    }
}

fn validate_health_check(spec: &TaskSpec, path: &str, errs: &mut Vec<FieldError>) {
    let Some(hc) = &spec.health_check else { return };
    let hp = join(path, "healthCheck");
    let set = [hc.command.is_some(), hc.http.is_some(), hc.tcp.is_some()].iter().filter(|b| **b).count();
    if set != 1 {
        errs.push(FieldError::invalid(hp.clone(), format!("{set} checks"), "set exactly one of command, http, tcp"));
    }
    if hc.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        errs.push(FieldError::invalid(join(&hp, "command"), "\"\"", "must be a shell line that exits 0 when healthy"));
    }
    let has_ports = !spec.ports.is_empty() || !spec.resources.ports.is_empty();
    let port_zero = "0 means the task's first assigned port, but the task asks for none; \
                     set a port number or add an entry to spec.ports";
    if let Some(http) = &hc.http {
        if http.port == 0 && !has_ports {
            errs.push(FieldError::invalid(join(&hp, "http.port"), 0, port_zero));
        }
        if http.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            errs.push(FieldError::invalid(
                join(&hp, "http.path"),
                format!("{:?}", http.path.as_deref().unwrap_or_default()),
                "must start with '/', e.g. /healthz",
            ));
        }
    }
    if hc.tcp.as_ref().is_some_and(|t| t.port == 0) && !has_ports {
        errs.push(FieldError::invalid(join(&hp, "tcp.port"), 0, port_zero));
    }
    for (field, v) in [
        ("intervalSeconds", hc.interval_seconds),
        ("timeoutSeconds", hc.timeout_seconds),
        ("consecutiveFailures", hc.consecutive_failures),
    ] {
        if v == Some(0) {
            errs.push(FieldError::invalid(join(&hp, field), 0, "must be >= 1"));
        }
    }
}

impl Validate for TaskSpec {
    fn validate_into(&self, path: &str, errs: &mut Vec<FieldError>) {
        validate_program(self, path, errs);
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                errs.push(FieldError::invalid(
                    format!("{}[{k:?}]", join(path, "env")),
                    format!("{k:?}"),
                    "an environment variable name must be non-empty and contain no '=' or NUL",
                ));
            }
        }
        self.resources.validate_into(&join(path, "resources"), errs);
        validate_ports(self, path, errs);
        validate_health_check(self, path, errs);
        if self.user.as_deref().is_some_and(str::is_empty) {
            errs.push(FieldError::invalid(
                join(path, "user"),
                "\"\"",
                "must not be empty when set; omit it to run as nobody",
            ));
        }
        if let Some(img) = self.container.as_ref().and_then(|c| c.image.as_deref()) {
            if img.trim().is_empty() || img.contains(char::is_whitespace) {
                errs.push(FieldError::invalid(
                    join(path, "container.image"),
                    format!("{img:?}"),
                    "must be an image reference such as docker.io/library/busybox:1.36",
                ));
            }
        }
        if self.production && self.revocable {
            errs.push(FieldError::forbidden(
                join(path, "revocable"),
                "a production task cannot run on revocable resources, which may be taken back at any time",
            ));
        }
    }
}

impl Validate for Task {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        self.spec.validate_into("spec", errs);
    }
}

fn validate_constraint(c: &Constraint, p: &str, errs: &mut Vec<FieldError>) {
    if c.attribute.is_empty() {
        errs.push(FieldError::required(format!("{p}.attribute"), "name an agent attribute (e.g. rack) or hostname"));
    }
    let vp = format!("{p}.value");
    match (c.operator, c.value.as_deref()) {
        (ConstraintOperator::Unique, None) => {}
        (ConstraintOperator::Unique, Some(_)) => {
            errs.push(FieldError::forbidden(vp, "UNIQUE takes no value; use MAX_PER to allow more than one per value"))
        }
        (op, None) => errs.push(FieldError::required(vp, format!("{} needs a value", operator_name(op)))),
        (ConstraintOperator::MaxPer, Some(v)) => {
            if !v.parse::<u32>().is_ok_and(|n| n >= 1) {
                errs.push(FieldError::invalid(vp, format!("{v:?}"), "MAX_PER needs a whole number >= 1, e.g. \"2\""));
            }
        }
        (ConstraintOperator::Like | ConstraintOperator::Unlike, Some(v)) => {
            if let Err(e) = regex::Regex::new(v) {
                let why = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                errs.push(FieldError::invalid(
                    vp,
                    format!("{v:?}"),
                    format!("{} needs a valid regular expression: {why}", operator_name(c.operator)),
                ));
            }
        }
        (ConstraintOperator::Equals, Some(_)) => {}
    }
}

fn operator_name(op: ConstraintOperator) -> &'static str {
    match op {
        ConstraintOperator::Unique => "UNIQUE",
        ConstraintOperator::Equals => "EQUALS",
        ConstraintOperator::Like => "LIKE",
        ConstraintOperator::Unlike => "UNLIKE",
        ConstraintOperator::MaxPer => "MAX_PER",
    }
}

impl Validate for Job {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        let s = &self.spec;
        s.template.validate_into("spec.template", errs);
        if s.template.agent.is_some() {
            errs.push(FieldError::forbidden(
                "spec.template.agent",
                "the jobs controller places instances; use spec.constraints to steer placement",
            ));
        }
        if s.production && s.template.revocable && !s.template.production {
            errs.push(FieldError::forbidden(
                "spec.template.revocable",
                "a production job cannot run on revocable resources, which may be taken back at any time",
            ));
        }
        if s.max_task_failures == 0 || s.max_task_failures < -1 {
            errs.push(FieldError::invalid(
                "spec.maxTaskFailures",
                s.max_task_failures,
                "must be >= 1 (1 means no retries), or -1 for unlimited",
            ));
        }
        match (s.type_, &s.cron) {
            (JobType::Cron, None) => errs.push(FieldError::required(
                "spec.cron",
                "a cron job needs cron.schedule, e.g. cron: {schedule: \"*/5 * * * *\"}",
            )),
            (JobType::Cron, Some(c)) => {
                if let Some(why) = cron_schedule(&c.schedule) {
                    errs.push(FieldError::invalid("spec.cron.schedule", format!("{:?}", c.schedule), why));
                }
            }
            (JobType::Service | JobType::Adhoc, Some(_)) => errs.push(FieldError::forbidden(
                "spec.cron",
                "only cron jobs take a schedule; set type: cron or remove cron",
            )),
            _ => {}
        }
        for (i, c) in s.constraints.iter().enumerate() {
            validate_constraint(c, &format!("spec.constraints[{i}]"), errs);
        }
        if let Some(u) = &s.update_strategy {
            if u.batch_size == 0 {
                errs.push(FieldError::invalid("spec.updateStrategy.batchSize", 0, "must be >= 1"));
            }
            if u.minimum_healthy_percent > 100 {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.minimumHealthyPercent",
                    u.minimum_healthy_percent,
                    "must be between 0 and 100",
                ));
            }
        }
    }
}

impl Validate for Role {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        let name = &self.metadata.name;
        let label_problem = dns1123_subdomain(name).is_none().then(|| dns1123_label(name)).flatten();
        if let Some(why) = label_problem {
            errs.push(FieldError::invalid(
                "metadata.name",
                format!("\"{name}\""),
                format!("a role name is also a namespace name: {why}"),
            ));
        }
        if !(self.spec.weight.is_finite() && self.spec.weight > 0.0) {
            errs.push(FieldError::invalid("spec.weight", self.spec.weight, "must be a number > 0, e.g. 1 or 2.5"));
        }
    }
}

impl Validate for Agent {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        self.spec.resources.validate_into("spec.resources", errs);
        let mut reserved = Resources::default();
        for (role, r) in &self.spec.reservations {
            let p = format!("spec.reservations[{role}]");
            if let Some(why) = dns1123_label(role) {
                errs.push(FieldError::invalid(p.clone(), format!("{role:?}"), format!("must be a role name: {why}")));
            }
            r.validate_into(&p, errs);
            reserved = reserved.add(r);
        }
        if !reserved.fits(&self.spec.resources) {
            errs.push(FieldError::invalid(
                "spec.reservations",
                "",
                "the reservations together exceed spec.resources; reserve less or declare more resources",
            ));
        }
        if self.spec.attributes.keys().any(String::is_empty) {
            errs.push(FieldError::invalid("spec.attributes", "\"\"", "an attribute name must not be empty"));
        }
    }
}

impl Validate for Lease {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        if let Some(0) = self.spec.lease_duration_seconds {
            errs.push(FieldError::invalid("spec.leaseDurationSeconds", 0, "must be >= 1"));
        }
    }
}

impl Validate for Framework {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        non_negative("spec.failoverTimeoutSeconds", self.spec.failover_timeout_seconds, errs);
        if let Some(r) = self.spec.default_refuse_seconds {
            non_negative("spec.defaultRefuseSeconds", r, errs);
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.spec.capabilities.iter().enumerate() {
            if !seen.insert(*c) {
                errs.push(FieldError::duplicate(format!("spec.capabilities[{i}]"), format!("{c:?}")));
            }
        }
    }
}

impl Validate for Offer {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        if self.spec.framework.is_empty() {
            errs.push(FieldError::required("spec.framework", "an offer names its framework"));
        }
        if self.spec.agent.is_empty() {
            errs.push(FieldError::required("spec.agent", "an offer names its agent"));
        }
        self.spec.resources.validate_into("spec.resources", errs);
        self.spec.reserved.validate_into("spec.reserved", errs);
        self.spec.revocable.validate_into("spec.revocable", errs);
    }
}

impl Validate for Reservation {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        if self.spec.agent.is_empty() {
            errs.push(FieldError::required("spec.agent", "name the agent to reserve on"));
        }
        self.spec.resources.validate_into("spec.resources", errs);
        if self.spec.resources.is_empty() {
            errs.push(FieldError::required(
                "spec.resources",
                "reserve at least one resource, e.g. resources: {cpus: 1, mem: 1024}",
            ));
        }
    }
}

impl Validate for Quota {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        self.spec.guarantee.validate_into("spec.guarantee", errs);
        let Some(limit) = &self.spec.limit else { return };
        limit.validate_into("spec.limit", errs);
        let guarantee = self.spec.guarantee.scalar_values();
        for (i, (name, lim)) in SCALARS.iter().zip(limit.scalar_values()).enumerate() {
            let g = guarantee[i];
            // A negative or non-finite side is already reported above.
            if g.is_finite() && lim.is_finite() && lim >= 0.0 && g > lim {
                errs.push(FieldError::invalid(
                    format!("spec.guarantee.{name}"),
                    g,
                    format!("must not exceed spec.limit.{name} ({lim}); raise the limit or lower the guarantee"),
                ));
            }
        }
    }
}

impl Validate for Event {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        if self.involved_object.name.is_empty() {
            errs.push(FieldError::required("involvedObject.name", "an event names the object it is about"));
        }
    }
}
