//! `Validate` for every kind: what a user may submit.
//!
//! Owns per-kind rules (names, non-negative resources, required commands,
//! enum-dependent fields). Every rule pushes a `FieldError` naming the field;
//! nothing here looks at other objects or the store.

use crate::kinds::*;
use crate::resource::Resource;
use crate::resources::Resources;
use crate::validation::{join, non_negative, validate_meta, FieldError, Validate};

impl Validate for Resources {
    fn validate_into(&self, path: &str, errs: &mut Vec<FieldError>) {
        non_negative(&join(path, "cpus"), self.cpus, errs);
        non_negative(&join(path, "mem"), self.mem, errs);
        non_negative(&join(path, "disk"), self.disk, errs);
        non_negative(&join(path, "gpus"), self.gpus, errs);
        if self.gpus.fract() != 0.0 && self.gpus.is_finite() {
            errs.push(FieldError::invalid(join(path, "gpus"), self.gpus, "must be a whole number"));
        }
        for (i, r) in self.ports.iter().enumerate() {
            let p = format!("{}[{i}]", join(path, "ports"));
            if r.begin == 0 {
                errs.push(FieldError::invalid(format!("{p}.begin"), r.begin, "must be between 1 and 65535"));
            }
            if r.end < r.begin {
                errs.push(FieldError::invalid(format!("{p}.end"), r.end, format!("must be >= begin ({})", r.begin)));
            }
        }
    }
}

fn validate_object_meta<K: Resource>(obj: &K, errs: &mut Vec<FieldError>) {
    validate_meta(obj.meta(), K::NAMESPACED, errs);
}

impl Validate for TaskSpec {
    fn validate_into(&self, path: &str, errs: &mut Vec<FieldError>) {
        match (&self.command, self.args.is_empty()) {
            (None, true) => errs.push(FieldError::required(
                join(path, "command"),
                "set command (run by /bin/sh -c) or args (exec form)",
            )),
            (Some(c), _) if c.trim().is_empty() => {
                errs.push(FieldError::invalid(join(path, "command"), "\"\"", "must not be empty"))
            }
            (Some(_), false) => {
                errs.push(FieldError::forbidden(join(path, "args"), "set either command or args, not both"))
            }
            _ => {}
        }
        for (i, a) in self.args.iter().enumerate() {
            if i == 0 && a.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{}[0]", join(path, "args")),
                    "\"\"",
                    "the program must not be empty",
                ));
            }
        }
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
        if let Some(hc) = &self.health_check {
            let hp = join(path, "healthCheck");
            let set = [hc.command.is_some(), hc.http.is_some(), hc.tcp.is_some()].iter().filter(|b| **b).count();
            if set != 1 {
                errs.push(FieldError::invalid(
                    hp.clone(),
                    format!("{set} checks"),
                    "set exactly one of command, http, tcp",
                ));
            }
            if let Some(0) = hc.interval_seconds {
                errs.push(FieldError::invalid(join(&hp, "intervalSeconds"), 0, "must be >= 1"));
            }
            if let Some(0) = hc.timeout_seconds {
                errs.push(FieldError::invalid(join(&hp, "timeoutSeconds"), 0, "must be >= 1"));
            }
            if let Some(0) = hc.consecutive_failures {
                errs.push(FieldError::invalid(join(&hp, "consecutiveFailures"), 0, "must be >= 1"));
            }
        }
        if let Some(user) = &self.user {
            if user.is_empty() {
                errs.push(FieldError::invalid(join(path, "user"), "\"\"", "must not be empty when set"));
            }
        }
        if let Some(c) = &self.container {
            if let Some(img) = &c.image {
                if img.trim().is_empty() || img.contains(char::is_whitespace) {
                    errs.push(FieldError::invalid(
                        join(&join(path, "container"), "image"),
                        format!("{img:?}"),
                        "must be an image reference such as docker.io/library/busybox:1.36",
                    ));
                }
            }
        }
    }
}

impl Validate for Task {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        self.spec.validate_into("spec", errs);
    }
}

impl Validate for Job {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        let s = &self.spec;
        s.template.validate_into("spec.template", errs);
        if s.max_task_failures < -1 {
            errs.push(FieldError::invalid(
                "spec.maxTaskFailures",
                s.max_task_failures,
                "must be >= 1, or -1 for unlimited",
            ));
        }
        match (s.type_, &s.cron) {
            (JobType::Cron, None) => errs.push(FieldError::required("spec.cron", "a cron job needs cron.schedule")),
            (JobType::Cron, Some(c)) if c.schedule.split_whitespace().count() != 5 => errs.push(FieldError::invalid(
                "spec.cron.schedule",
                format!("{:?}", c.schedule),
                "must be a five-field cron expression, e.g. \"*/5 * * * *\"",
            )),
            (JobType::Service | JobType::Adhoc, Some(_)) => {
                errs.push(FieldError::forbidden("spec.cron", "only cron jobs take a schedule"))
            }
            _ => {}
        }
        for (i, c) in s.constraints.iter().enumerate() {
            let p = format!("spec.constraints[{i}]");
            if c.attribute.is_empty() {
                errs.push(FieldError::required(format!("{p}.attribute"), "name an agent attribute or hostname"));
            }
            match c.operator {
                ConstraintOperator::Unique => {}
                ConstraintOperator::MaxPer => match c.value.as_deref().map(str::parse::<u32>) {
                    Some(Ok(n)) if n >= 1 => {}
                    _ => errs.push(FieldError::invalid(
                        format!("{p}.value"),
                        format!("{:?}", c.value.clone().unwrap_or_default()),
                        "MAX_PER needs a whole number >= 1",
                    )),
                },
                ConstraintOperator::Equals | ConstraintOperator::Like | ConstraintOperator::Unlike => match &c.value {
                    None => errs.push(FieldError::required(format!("{p}.value"), "this operator needs a value")),
                    Some(v) if c.operator != ConstraintOperator::Equals && regex::Regex::new(v).is_err() => errs.push(
                        FieldError::invalid(format!("{p}.value"), format!("{v:?}"), "not a valid regular expression"),
                    ),
                    _ => {}
                },
            }
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
        if !(self.spec.weight.is_finite() && self.spec.weight > 0.0) {
            errs.push(FieldError::invalid("spec.weight", self.spec.weight, "must be > 0"));
        }
    }
}

impl Validate for Agent {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        self.spec.resources.validate_into("spec.resources", errs);
        for (role, r) in &self.spec.reservations {
            r.validate_into(&format!("spec.reservations[{role}]"), errs);
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
            errs.push(FieldError::required("spec.resources", "reserve at least one resource"));
        }
    }
}

impl Validate for Quota {
    fn validate_into(&self, _path: &str, errs: &mut Vec<FieldError>) {
        validate_object_meta(self, errs);
        self.spec.guarantee.validate_into("spec.guarantee", errs);
        if let Some(limit) = &self.spec.limit {
            limit.validate_into("spec.limit", errs);
            if !self.spec.guarantee.fits(limit) {
                errs.push(FieldError::invalid("spec.guarantee", "guarantee", "must not exceed spec.limit"));
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
