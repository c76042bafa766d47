//! A vault's strategy and policy: interval, index freshness, budgets, conflict policy,
//! prices.

use serde::{Deserialize, Serialize};

/// How a vault keeps its two sides in step (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The local directory publishes to the bucket.
    Mirror,
    /// Both sides take changes (two-way).
    Sync,
    /// Remote objects are indexed; bodies are fetched on access or when planned.
    Cache,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mirror" => Ok(Strategy::Mirror),
            "sync" => Ok(Strategy::Sync),
            "cache" => Ok(Strategy::Cache),
            _ => Err(format!("unknown strategy `{s}` (mirror, sync or cache)")),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Mirror => "mirror",
            Strategy::Sync => "sync",
            Strategy::Cache => "cache",
        })
    }
}

/// Request, byte and price budgets of one sync run; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Budgets {
    /// LIST requests.
    pub list: Option<u64>,
    /// GET requests.
    pub get: Option<u64>,
    /// PUT requests (parts included).
    pub put: Option<u64>,
    /// HEAD requests.
    pub head: Option<u64>,
    /// DELETE requests.
    pub delete: Option<u64>,
    /// Bytes uploaded.
    pub upload_bytes: Option<u64>,
    /// Bytes downloaded.
    pub download_bytes: Option<u64>,
    /// Estimated price in US dollars.
    pub price_usd: Option<f64>,
}

/// A vault's policy: how often, how fresh the index must be, budgets, conflicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Periodic sync interval, seconds (`None`: manual only).
    pub interval_secs: Option<u64>,
    /// An index older than this is stale: a sync refreshes it or stalls.
    pub max_remote_index_age_secs: u64,
    /// Budgets per run.
    pub budgets: Budgets,
    /// The conflict policy of two-way sync (`keep_local`, `keep_remote`, `ask`,
    /// `overwrite`, `keep_both`); stored for the two-way strategy.
    pub on_sync_conflict: String,
    /// Prices in US dollars for estimates and the price budget; `None`: S3 Standard
    /// us-east-1 (see `larder_store::meter::Pricing`).
    pub pricing: Option<PriceTable>,
}

/// A vault's price table: per 1,000 requests of each kind, and per GB downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// LIST, per 1,000.
    pub list: f64,
    /// GET, per 1,000.
    pub get: f64,
    /// HEAD, per 1,000.
    pub head: f64,
    /// PUT/COPY/POST, per 1,000.
    pub put: f64,
    /// DELETE, per 1,000.
    pub delete: f64,
    /// Per GB (10^9 bytes) out.
    pub out_gb: f64,
}

impl PriceTable {
    /// S3 Standard in us-east-1, as AWS listed it in 2026-11.
    pub const S3_STANDARD_US_EAST_1: PriceTable = PriceTable {
        list: 0.005,
        get: 0.0004,
        head: 0.0004,
        put: 0.005,
        delete: 0.0,
        out_gb: 0.09,
    };

    /// Parses `put=0.005,get=0.0004,…` over the S3 Standard defaults.
    ///
    /// # Errors
    ///
    /// A message naming the unknown field or the bad number.
    pub fn parse(s: &str) -> Result<PriceTable, String> {
        let mut t = PriceTable::S3_STANDARD_US_EAST_1;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected NAME=USD"))?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("`{part}`: not a price (0 or more)"))?;
            match k.trim() {
                "list" => t.list = v,
                "get" => t.get = v,
                "head" => t.head = v,
                "put" => t.put = v,
                "delete" => t.delete = v,
                "out_gb" | "out" => t.out_gb = v,
                other => {
                    return Err(format!(
                        "unknown price `{other}` (list, get, head, put, delete, out_gb)"
                    ))
                }
            }
        }
        Ok(t)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            interval_secs: None,
            max_remote_index_age_secs: 24 * 3600,
            budgets: Budgets::default(),
            on_sync_conflict: "ask".to_owned(),
            pricing: None,
        }
    }
}
