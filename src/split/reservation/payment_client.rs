//! reservation-svc's synchronous calls to payment-svc for the points a client reads and
//! charges (`GET /points`, `POST /points/charge` are answered through reservation-svc).

use pg_outbox::settings::Secret;
use std::time::Duration;

#[derive(Clone)]
pub struct PaymentClient {
    client: reqwest::Client,
    base_url: String,
    internal_token: Secret,
}

#[derive(Debug, thiserror::Error)]
#[error("payment-svc did not answer")]
pub struct Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>);

#[derive(serde::Deserialize)]
struct Balance {
    balance: i64,
}

impl PaymentClient {
    pub fn new(base_url: &str, internal_token: &Secret) -> Result<Self, reqwest::Error> {
        Ok(PaymentClient {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            internal_token: internal_token.clone(),
        })
    }

    pub async fn balance(&self, user_id: i64) -> Result<i64, Unavailable> {
        let url = format!("{}/internal/balances/{user_id}", self.base_url);
        self.answer(self.client.get(url)).await
    }

    pub async fn charge(&self, user_id: i64, amount: i64) -> Result<i64, Unavailable> {
        let url = format!("{}/internal/balances/{user_id}/charges", self.base_url);
        let body = serde_json::json!({ "amount": amount });
        self.answer(self.client.post(url).json(&body)).await
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<i64, Unavailable> {
        let fail = |e: reqwest::Error| Unavailable(Box::new(e));
        let response = request
            .bearer_auth(self.internal_token.expose())
            .send()
            .await
            .map_err(fail)?;
        let balance: Balance = response
            .error_for_status()
            .map_err(fail)?
            .json()
            .await
            .map_err(fail)?;
        Ok(balance.balance)
    }
}
