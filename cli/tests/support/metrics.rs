//! What the dashboards and alert rules query, and what the processes export:
//! metric names read out of PromQL, the queries of Grafana dashboards and of
//! Prometheus rule files, and the metric families of a `/metrics` text.
//!
//! The PromQL reader is a tokenizer, not a parser: it skips strings, label
//! matchers (`{...}`), ranges (`[...]`), numbers and durations, Grafana
//! variables (`$job`), keywords, and the label lists of `by`, `without`,
//! `on`, `ignoring`, `group_left` and `group_right`; a name followed by `(`
//! is a function or aggregation. What is left is a selected metric.

use std::collections::BTreeMap;

/// Words of PromQL that are not metrics and need not be followed by `(`:
/// operators, modifiers, and the aggregations (`sum by (le) (...)`).
const KEYWORDS: [&str; 21] = [
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Modifiers followed by a parenthesised list of labels.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects, in order, each once.
pub fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = after_string(&chars, i);
        } else if c == '{' {
            i = after_close(&chars, i, '}');
        } else if c == '[' {
            i = after_close(&chars, i, ']');
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            // A number, a duration (5m, 1h30m) or a Grafana variable.
            i += 1;
            while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (is_word(chars[i]) || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let paren = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if paren {
                    i = after_close(&chars, next, ')');
                }
            } else if !paren
                && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                && !names.contains(&word)
            {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The index after the string literal opening at `open`.
fn after_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index after the `close` that ends the group opening at `open`
/// (strings inside are skipped whole).
fn after_close(chars: &[char], open: usize, close: char) -> usize {
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = after_string(chars, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The metric names a Grafana variable query selects: the selector of
/// `label_values(selector, label)` or the expression of `query_result(...)`;
/// `label_values(label)` and `metrics(regex)` select none.
pub fn variable_metric_names(query: &str) -> Vec<String> {
    let query = query.trim();
    let inner = |prefix: &str| {
        query
            .strip_prefix(prefix)
            .and_then(|rest| rest.trim_start().strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
    };
    if let Some(args) = inner("label_values") {
        match args.rfind(',') {
            Some(comma) => metric_names(&args[..comma]),
            None => Vec::new(),
        }
    } else if let Some(expr) = inner("query_result") {
        metric_names(expr)
    } else if inner("metrics").is_some() || inner("label_names").is_some() {
        Vec::new()
    } else {
        metric_names(query)
    }
}

/// The queries of a Grafana dashboard, each with where it is: the
/// dashboard file and the panel (or variable).
pub struct DashboardQueries {
    /// `(where, PromQL)` of every panel target, rows' nested panels included.
    pub panels: Vec<(String, String)>,
    /// `(where, query)` of every query variable, as written (see
    /// [`variable_metric_names`]).
    pub variables: Vec<(String, String)>,
}

/// The queries of `dashboard`, read from `file`.
pub fn dashboard_queries(file: &str, dashboard: &serde_json::Value) -> DashboardQueries {
    fn walk(file: &str, panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("{file}: panel \"{title}\""), expr.to_owned()));
                }
            }
            walk(file, &panel["panels"], out);
        }
    }
    let mut panels = Vec::new();
    walk(file, &dashboard["panels"], &mut panels);
    let mut variables = Vec::new();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = match &variable["query"] {
            serde_json::Value::String(query) => query.as_str(),
            other => other["query"].as_str().unwrap_or_default(),
        };
        let name = variable["name"].as_str().unwrap_or_default();
        variables.push((format!("{file}: variable ${name}"), query.to_owned()));
    }
    DashboardQueries { panels, variables }
}

/// One rule of a Prometheus rule file.
pub struct Rule {
    /// The alert's name, or the recording rule's.
    pub name: String,
    /// Whether it is an alerting rule.
    pub alert: bool,
    /// Its PromQL.
    pub expr: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The rules of a Prometheus rule file (`groups: [{name, rules: [...]}]`).
pub fn rules(yaml: &str) -> Vec<Rule> {
    let file: serde_json::Value = serde_saphyr::from_str(yaml).expect("the rule file is YAML");
    let strings = |value: &serde_json::Value| -> BTreeMap<String, String> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let mut out = Vec::new();
    for group in file["groups"].as_array().expect("groups: a list") {
        for rule in group["rules"].as_array().expect("rules: a list") {
            let (name, alert) = match (rule["alert"].as_str(), rule["record"].as_str()) {
                (Some(alert), _) => (alert, true),
                (None, Some(record)) => (record, false),
                (None, None) => panic!("a rule without alert or record: {rule}"),
            };
            out.push(Rule {
                name: name.to_owned(),
                alert,
                expr: rule["expr"].as_str().expect("expr: a string").to_owned(),
                labels: strings(&rule["labels"]),
                annotations: strings(&rule["annotations"]),
            });
        }
    }
    out
}

/// The metric families of a `/metrics` text, by name, with their type
/// (`counter`, `gauge`, `histogram`, ... from `# TYPE`; `untyped` for a
/// sample without one).
pub fn families(exposition: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                out.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name: String = line
                .chars()
                .take_while(|&c| is_word(c) || c == ':')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| out.contains_key(*base))
                .map_or(name.clone(), str::to_owned);
            out.entry(family).or_insert_with(|| "untyped".to_owned());
        }
    }
    out
}

/// Whether a queried `name` is exported by a family in `families`: the
/// family itself, or a histogram's (or summary's) `_bucket`, `_sum`, `_count`.
pub fn is_exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|kind| kind == "histogram" || (kind == "summary" && *suffix != "_bucket"))
    })
}

#[test]
fn promql_names_skip_functions_labels_strings_ranges_and_keywords() {
    let expr = r#"histogram_quantile(0.99, sum by (namespace, le) (rate(a_seconds_bucket{job=~"$job", x="}b{"}[$__rate_interval])))
        > 0.005 and on (namespace) group_left () sum without (le) (b_total offset 1h) / ignoring(x) c:rule
        or vector(0) unless count_values("d_total", e) + absent(f{g="h"}) * label_replace(i, "j", "$1", "k", "(.*)")"#;
    assert_eq!(
        metric_names(expr),
        ["a_seconds_bucket", "b_total", "c:rule", "e", "f", "i"]
    );
    assert_eq!(
        variable_metric_names(r#"label_values(agentauth_x_count{job=~"$job"}, namespace)"#),
        ["agentauth_x_count"]
    );
    assert!(variable_metric_names("label_values(job)").is_empty());
}

#[test]
fn families_read_types_and_fold_histogram_series() {
    let text = "# HELP h_seconds h\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 0\n\
                h_seconds_sum 0\nh_seconds_count 0\n# TYPE c_total counter\nc_total{a=\"b\"} 1\nbare 2\n";
    let families = families(text);
    assert_eq!(
        families.keys().collect::<Vec<_>>(),
        ["bare", "c_total", "h_seconds"]
    );
    assert!(is_exported("h_seconds_bucket", &families));
    assert!(is_exported("h_seconds_count", &families));
    assert!(!is_exported("c_total_count", &families));
    assert!(!is_exported("c", &families));
}
