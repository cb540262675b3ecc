//! Amazon SQS over its JSON protocol (`POST /` with `X-Amz-Target: AmazonSQS.*`, SigV4 from ckp-connectors):
//! long polls of `ReceiveMessage` (up to 10 messages, 10 s), `DeleteMessage` as the acknowledgement, and
//! `ChangeMessageVisibility` to keep a message while the caller waits to handle it. A message's id is its
//! `MessageId`, the same on every receive; a message not deleted is received again after its visibility timeout.
//! Any number of processes may consume one queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ckp_connectors::sigv4;
use serde_json::{Value, json};

use crate::{Ack, BrokerError, Delivery, Settings, Source, SqsQueue, bounded};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// How long a received message stays invisible to other receives.
const VISIBILITY_SECS: u64 = 30;
/// A long poll's wait.
const WAIT_SECS: u64 = 10;

/// A signed client of one queue.
pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    credentials: Option<(String, String, Option<String>)>,
    queue_url: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("sqs::Client").field("queue_url", &self.queue_url).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `source`'s queue (its URL resolved by name when needed).
    pub(crate) async fn new(source: &Source, settings: &Settings) -> Result<Client, BrokerError> {
        let mut client = Client::unresolved(source, settings)?;
        client.queue_url = match source {
            Source::Sqs { queue: SqsQueue::Name(name), .. } => {
                let reply = client.call("GetQueueUrl", json!({ "QueueName": name })).await?;
                reply
                    .get("QueueUrl")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| BrokerError(format!("sqs GetQueueUrl for `{name}` answered no QueueUrl")))?
            }
            _ => client.queue_url,
        };
        Ok(client)
    }

    /// A client of `source`'s endpoint; the queue's URL is set only when the source gives it.
    pub(crate) fn unresolved(source: &Source, settings: &Settings) -> Result<Client, BrokerError> {
        let Source::Sqs { queue, region, endpoint } = source else { return Err(crate::not_kind("SQS")) };
        let region = region.clone().unwrap_or_else(|| settings.aws_region.clone());
        let endpoint = match (endpoint, queue) {
            (Some(e), _) => e.clone(),
            (None, SqsQueue::Url(u)) => origin(u).unwrap_or_default(),
            (None, SqsQueue::Name(_)) => {
                settings.aws_endpoint.clone().unwrap_or_else(|| format!("https://sqs.{region}.amazonaws.com/"))
            }
        };
        let endpoint = reqwest::Url::parse(&endpoint)
            .ok()
            .filter(|u| u.host_str().is_some())
            .ok_or_else(|| BrokerError(format!("sqs endpoint `{endpoint}` is not a URL")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(Duration::from_secs(WAIT_SECS + 20))
            .build()
            .map_err(|e| BrokerError::new("sqs client", e))?;
        let queue_url = match queue {
            SqsQueue::Url(u) => u.clone(),
            SqsQueue::Name(_) => String::new(),
        };
        Ok(Client { http, endpoint, region, credentials: settings.aws_credentials.clone(), queue_url })
    }

    /// The queue's URL.
    pub(crate) fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Calls `AmazonSQS.{action}` with `body`; its JSON answer, or the error's type.
    pub(crate) async fn call(&self, action: &str, body: Value) -> Result<Value, BrokerError> {
        let body = body.to_string();
        let target = format!("AmazonSQS.{action}");
        let mut req = self.http.post(self.endpoint.clone());
        match &self.credentials {
            Some((id, secret, token)) => {
                let c = sigv4::Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: token.as_deref(),
                };
                let r = sigv4::Request {
                    service: "sqs",
                    region: &self.region,
                    target: &target,
                    content_type: CONTENT_TYPE,
                };
                for (name, value) in sigv4::sign(&c, &r, &self.endpoint, body.as_bytes(), chrono::Utc::now()) {
                    req = req.header(name, value);
                }
            }
            None => {
                req = req.header("content-type", CONTENT_TYPE).header("x-amz-target", &target);
            }
        }
        let resp = req.body(body).send().await.map_err(|e| BrokerError::new(format!("sqs {action}"), e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| BrokerError::new(format!("sqs {action}"), e))?;
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            // Only the error's type: AWS messages can echo request details.
            let kind = reply.get("__type").and_then(Value::as_str).unwrap_or("no error type");
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            return Err(BrokerError(format!("sqs {action} answered HTTP {status} ({kind})")));
        }
        Ok(reply)
    }
}

/// `scheme://host[:port]/` of a URL.
fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(format!("{}/", u.origin().ascii_serialization()))
}

pub(crate) struct Consumer {
    client: Arc<Client>,
    buffered: VecDeque<Value>,
    max_payload: usize,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sqs::Consumer")
    }
}

/// Deletes one message, or extends its visibility.
#[derive(Debug)]
pub(crate) struct Acker {
    client: Arc<Client>,
    receipt: String,
}

impl Acker {
    pub(crate) async fn ack(self) -> Result<(), BrokerError> {
        let body = json!({ "QueueUrl": self.client.queue_url, "ReceiptHandle": self.receipt });
        self.client.call("DeleteMessage", body).await.map(|_| ())
    }

    pub(crate) async fn extend(&self) -> Result<(), BrokerError> {
        let body = json!({
            "QueueUrl": self.client.queue_url, "ReceiptHandle": self.receipt, "VisibilityTimeout": VISIBILITY_SECS,
        });
        self.client.call("ChangeMessageVisibility", body).await.map(|_| ())
    }
}

impl Consumer {
    pub(crate) async fn connect(source: &Source, settings: &Settings) -> Result<Consumer, BrokerError> {
        let client = Client::new(source, settings).await?;
        Ok(Consumer { client: Arc::new(client), buffered: VecDeque::new(), max_payload: settings.max_payload })
    }

    pub(crate) async fn next(&mut self) -> Result<Delivery, BrokerError> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                let (Some(id), Some(receipt)) =
                    (m.get("MessageId").and_then(Value::as_str), m.get("ReceiptHandle").and_then(Value::as_str))
                else {
                    continue;
                };
                let mut headers = BTreeMap::new();
                for key in ["Attributes", "MessageAttributes"] {
                    if let Some(Value::Object(attrs)) = m.get(key) {
                        for (name, value) in attrs {
                            let text = match value {
                                Value::String(s) => s.clone(),
                                // A message attribute: {"DataType": ..., "StringValue": ...}.
                                other => other
                                    .get("StringValue")
                                    .and_then(Value::as_str)
                                    .map_or_else(|| other.to_string(), str::to_owned),
                            };
                            headers.insert(name.clone(), text);
                        }
                    }
                }
                let redelivered =
                    headers.get("ApproximateReceiveCount").and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 1);
                let body = m.get("Body").and_then(Value::as_str).unwrap_or_default().as_bytes().to_vec();
                let payload = bounded(body, self.max_payload, &mut headers);
                return Ok(Delivery {
                    id: id.to_owned(),
                    subject: self.client.queue_url.clone(),
                    headers,
                    payload,
                    redelivered,
                    ack: Ack::Sqs(Acker { client: self.client.clone(), receipt: receipt.to_owned() }),
                });
            }
            let reply = self
                .client
                .call(
                    "ReceiveMessage",
                    json!({
                        "QueueUrl": self.client.queue_url,
                        "MaxNumberOfMessages": 10,
                        "WaitTimeSeconds": WAIT_SECS,
                        "VisibilityTimeout": VISIBILITY_SECS,
                        "AttributeNames": ["All"],
                        "MessageSystemAttributeNames": ["All"],
                        "MessageAttributeNames": ["All"],
                    }),
                )
                .await?;
            if let Some(Value::Array(messages)) = reply.get("Messages") {
                self.buffered.extend(messages.iter().cloned());
            }
        }
    }
}
