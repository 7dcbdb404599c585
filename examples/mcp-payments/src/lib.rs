//! An MCP server with three payment tools, built with `rmcp` (streamable
//! HTTP transport), and no authorization code at all: it is meant to run
//! behind `agentauth mcp-gateway` (see this folder's README and
//! `tool-map.yaml`).
//!
//! ```text
//!  get_balance {account}                   read     accounts/{account}
//!  send_payment {to, amount, currency}     transact payments/{currency}, amount from `amount`
//!  delete_account {account}                delete   accounts/{account}   (the example grant lacks it)
//!  export_statements {account}             not in the tool map: the gateway never lists nor forwards it
//! ```
//!
//! [`Ledger`] counts the calls that reached the server, so a test can show
//! that a refused call never did.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;

/// The calls that reached the server, by tool.
#[derive(Debug, Default)]
pub struct Ledger {
    /// `get_balance` calls.
    pub balance: AtomicUsize,
    /// `send_payment` calls.
    pub payments: AtomicUsize,
    /// `delete_account` calls.
    pub deletions: AtomicUsize,
    /// `export_statements` calls.
    pub exports: AtomicUsize,
}

/// `get_balance` and `delete_account` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AccountArgs {
    /// The account id, e.g. `acct-1`.
    pub account: String,
}

/// `send_payment` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PaymentArgs {
    /// The payee's account id.
    pub to: String,
    /// The amount as a decimal string, e.g. `"12.50"`.
    pub amount: String,
    /// The ISO 4217 currency, e.g. `"EUR"`.
    pub currency: String,
}

/// The MCP server.
#[derive(Clone, Debug)]
pub struct Payments {
    ledger: Arc<Ledger>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Payments {
    /// A server recording its calls in `ledger`.
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Payments {
            ledger,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "The balance of an account.")]
    async fn get_balance(&self, Parameters(args): Parameters<AccountArgs>) -> String {
        self.ledger.balance.fetch_add(1, Ordering::SeqCst);
        format!("account {}: 1234.56 EUR", args.account)
    }

    #[tool(description = "Send a payment to an account.")]
    async fn send_payment(&self, Parameters(args): Parameters<PaymentArgs>) -> String {
        let n = self.ledger.payments.fetch_add(1, Ordering::SeqCst) + 1;
        format!(
            "payment {n}: {} {} sent to {}",
            args.amount, args.currency, args.to
        )
    }

    #[tool(description = "Export an account's statements (not in the tool map).")]
    async fn export_statements(&self, Parameters(args): Parameters<AccountArgs>) -> String {
        self.ledger.exports.fetch_add(1, Ordering::SeqCst);
        format!("statements of {} exported", args.account)
    }

    #[tool(description = "Close and delete an account.")]
    async fn delete_account(&self, Parameters(args): Parameters<AccountArgs>) -> String {
        self.ledger.deletions.fetch_add(1, Ordering::SeqCst);
        format!("account {} deleted", args.account)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Payments {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-payments",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Payment tools; every call is authorized by AgentAuth at the gateway.",
            )
    }
}

/// The streamable HTTP endpoint as an axum router, serving `/mcp`.
pub fn router(ledger: Arc<Ledger>) -> axum::Router {
    let service = StreamableHttpService::new(
        move || Ok(Payments::new(ledger.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    axum::Router::new().nest_service("/mcp", service)
}
