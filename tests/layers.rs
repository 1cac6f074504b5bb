//! The layers as the compiler keeps them (docs/ARCHITECTURE.md): a crate can only import what its
//! manifest lists, so the layering holds exactly when no crate depends on a crate above it.
//!
//! This reads `Cargo.lock`, which cargo brings in step with every manifest before it builds a
//! test, and checks each crate under `crates/` against what it must not reach: directly (any
//! dependency kind, so that a dev-dependency back up cannot bring in a second copy of the types)
//! or through other packages. No build, no network, no cargo process.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// The root package: `upstream`, `controller` and `cli`.
const OPERATOR: &str = "dcs-task-operator";

/// Kubernetes and the CRD schema machinery.
const KUBERNETES: &[&str] = &[
    "kube",
    "kube-client",
    "kube-core",
    "kube-runtime",
    "kube-derive",
    "kube-lease-manager",
    "k8s-openapi",
    "schemars",
];

/// How a crate may use Kubernetes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kubernetes {
    /// Not at all, not even through another crate.
    Never,
    /// Only the resource's types through `dcs-api`: no Kubernetes crate of its own, so a
    /// `use kube::...` in it does not build.
    ThroughTheApiOnly,
    /// It defines the resource (`dcs-api`).
    Defines,
}

/// Each crate below the operator: the layers it must not reach, and its use of Kubernetes.
const RULES: &[(&str, &[&str], Kubernetes)] = &[
    (
        "dcs-common",
        &[OPERATOR, "dcs-cloud", "dcs-sim", "dcs-api", "dcs-query"],
        Kubernetes::Never,
    ),
    (
        "dcs-cloud",
        &[OPERATOR, "dcs-sim", "dcs-api", "dcs-query"],
        Kubernetes::Never,
    ),
    (
        "dcs-sim",
        &[OPERATOR, "dcs-api", "dcs-query"],
        Kubernetes::Never,
    ),
    (
        "dcs-api",
        &[OPERATOR, "dcs-cloud", "dcs-sim", "dcs-query"],
        Kubernetes::Defines,
    ),
    (
        "dcs-query",
        &[OPERATOR, "dcs-sim"],
        Kubernetes::ThroughTheApiOnly,
    ),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first `key = "value"` of `text`.
fn string_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        rest.trim().strip_prefix('"')?.strip_suffix('"')
    })
}

/// One `[[package]]` of the lock file: its version, whether it comes from a registry (or git)
/// rather than a path, and its dependencies as `name` or `name version`.
struct Locked {
    version: String,
    external: bool,
    deps: Vec<String>,
}

/// The lock file's packages by name (a name may be locked at several versions).
fn lock() -> BTreeMap<String, Vec<Locked>> {
    let text = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock is readable");
    let mut packages: BTreeMap<String, Vec<Locked>> = BTreeMap::new();
    for block in text.split("[[package]]").skip(1) {
        let name = string_value(block, "name").expect("a package has a name");
        let deps = match block.split_once("dependencies = [") {
            Some((_, list)) => list
                .split(']')
                .next()
                .unwrap_or_default()
                .split(',')
                .filter_map(|item| item.trim().strip_prefix('"')?.strip_suffix('"'))
                // `name version (source)` names the source only where two share a version.
                .map(|dep| dep.split(" (").next().unwrap_or(dep).to_string())
                .collect(),
            None => Vec::new(),
        };
        packages.entry(name.to_string()).or_default().push(Locked {
            version: string_value(block, "version")
                .unwrap_or_default()
                .to_string(),
            external: string_value(block, "source").is_some(),
            deps,
        });
    }
    packages
}

/// Every package `name` reaches, each with the chain of names that leads to it. The lock file
/// lists a workspace crate's dependencies of every kind, and a registry package's normal and
/// build dependencies, which is what can be built into the crate.
fn reach(lock: &BTreeMap<String, Vec<Locked>>, name: &str) -> BTreeMap<String, Vec<String>> {
    let find = |dep: &str| -> (String, &Locked) {
        let (dep_name, version) = dep.split_once(' ').unwrap_or((dep, ""));
        let package = lock[dep_name]
            .iter()
            .find(|package| version.is_empty() || package.version == version)
            .unwrap_or_else(|| panic!("{dep} is not in Cargo.lock"));
        (dep_name.to_string(), package)
    };
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::from([format!("{name} {}", find(name).1.version)]);
    let mut queue = VecDeque::from([(name.to_string(), vec![name.to_string()])]);
    while let Some((dep, chain)) = queue.pop_front() {
        for next in &find(&dep).1.deps {
            let (next_name, package) = find(next);
            if seen.insert(format!("{next_name} {}", package.version)) {
                let mut longer = chain.clone();
                longer.push(next_name.clone());
                chains.entry(next_name).or_insert_with(|| longer.clone());
                queue.push_back((next.clone(), longer));
            }
        }
    }
    chains
}

#[test]
fn no_crate_depends_on_a_layer_above_it_or_on_kubernetes() {
    let lock = lock();
    let mut broken = Vec::new();
    for (name, above, kubernetes) in RULES {
        let reached = reach(&lock, name);
        let transitive = match kubernetes {
            Kubernetes::Never => KUBERNETES,
            Kubernetes::ThroughTheApiOnly | Kubernetes::Defines => &[],
        };
        for forbidden in above.iter().chain(transitive) {
            if let Some(chain) = reached.get(*forbidden) {
                broken.push(format!(
                    "{name} reaches {forbidden}: {}",
                    chain.join(" -> ")
                ));
            }
        }
        if *kubernetes == Kubernetes::ThroughTheApiOnly {
            for direct in direct_dependencies(&lock, name) {
                if KUBERNETES.contains(&direct.as_str()) {
                    broken.push(format!("{name} depends on {direct} itself"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The names `name` lists in its own manifest (any kind).
fn direct_dependencies(lock: &BTreeMap<String, Vec<Locked>>, name: &str) -> Vec<String> {
    lock[name][0]
        .deps
        .iter()
        .map(|dep| dep.split(' ').next().unwrap_or(dep).to_string())
        .collect()
}

/// A crate added under `crates/` (or any other path package) gets a rule here too, so it cannot
/// slip past the check.
#[test]
fn every_crate_has_a_rule() {
    let ruled: BTreeSet<&str> = RULES.iter().map(|(name, ..)| *name).collect();
    let mut under_crates = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/ is readable") {
        let manifest = entry.expect("a directory entry").path().join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let name = string_value(&text, "name").expect("a crate has a name");
            under_crates.insert(name.to_string());
        }
    }
    assert_eq!(
        under_crates
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        ruled
    );
    let lock = lock();
    let local: BTreeSet<&str> = lock
        .iter()
        .filter(|(_, versions)| versions.iter().any(|package| !package.external))
        .map(|(name, _)| name.as_str())
        .filter(|name| *name != OPERATOR)
        .collect();
    assert_eq!(local, ruled);
}

/// The check sees what it is meant to see: the allowed edges and the operator's own use of
/// Kubernetes show up, so a rule that finds nothing is not a graph read wrong.
#[test]
fn the_graph_shows_the_allowed_edges() {
    let lock = lock();
    let operator = reach(&lock, OPERATOR);
    for expected in [
        "kube",
        "k8s-openapi",
        "schemars",
        "dcs-common",
        "dcs-cloud",
        "dcs-sim",
        "dcs-api",
        "dcs-query",
    ] {
        assert!(
            operator.contains_key(expected),
            "{OPERATOR} should reach {expected}"
        );
    }
    let sim = reach(&lock, "dcs-sim");
    assert_eq!(sim["dcs-cloud"], ["dcs-sim", "dcs-cloud"]);
    assert!(sim.contains_key("dcs-common"));
    // Through the client: the simulator does not list hmac itself.
    assert_eq!(sim["hmac"], ["dcs-sim", "dcs-cloud", "hmac"]);
    // The query core reads the resource's types, and so Kubernetes' types, only through dcs-api.
    let query = reach(&lock, "dcs-query");
    assert_eq!(query["kube"], ["dcs-query", "dcs-api", "kube"]);
    assert!(!direct_dependencies(&lock, "dcs-query").contains(&"kube".to_string()));
}
