//! Registering Prometheus metrics and rendering them, the same way in every
//! service: each metric is created and registered in one call, so a metric
//! can never be created and forgotten (never exported).

use prometheus::core::Collector;
use prometheus::{
    Error, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Creates metrics and registers them in one registry.
#[derive(Clone, Copy, Debug)]
pub struct Register<'a>(pub &'a Registry);

impl Register<'_> {
    /// Registers `metric` and hands it back.
    pub fn add<M: Collector + Clone + 'static>(&self, metric: M) -> Result<M, Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    /// A counter without labels.
    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, Error> {
        self.add(IntCounter::new(name, help)?)
    }

    /// A counter with `labels`.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    /// A gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, Error> {
        self.add(IntGauge::new(name, help)?)
    }

    /// A gauge with `labels`.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A histogram without labels, over `buckets`.
    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Result<Histogram, Error> {
        self.add(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets),
        )?)
    }

    /// A histogram with `labels`, over `buckets`.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> Result<HistogramVec, Error> {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets),
            labels,
        )?)
    }
}

/// The text exposition format of `registry`, for `/metrics`: empty, with a
/// warning, if a metric cannot be encoded (only a malformed one can be).
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(error) = prometheus::Encoder::encode(&encoder, &registry.gather(), &mut out) {
        tracing::warn!(%error, "failed to encode metrics");
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn what_is_registered_is_rendered_and_a_second_registration_fails() {
        let registry = Registry::new();
        let r = Register(&registry);
        let c = r.counter_vec("x_total", "X by kind", &["kind"]).unwrap();
        c.with_label_values(&["a"]).inc();
        assert!(render(&registry).contains("x_total{kind=\"a\"} 1"));
        assert!(r.counter("x_total", "again").is_err());
    }
}
