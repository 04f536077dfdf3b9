//! The same order saga, choreographed: no orchestrator, each service
//! reacting to the others' events.
//!
//! Episode: 18, "Distributed Transactions" (saga choreography)
//! Pattern: saga (choreographed) / event-driven collaboration
//! Test it: cargo test -p consensus transaction_saga_choreographed
//!
//! Three reactors, one per service, each owning its calls to its own
//! service (the same gRPC `Inventory`, `Accounts` and `Shipping`) and
//! subscribed to one event stream:
//!
//! ```text
//! OrderPlaced ──inventory──▶ StockReserved ──payments──▶ PaymentHeld ──shipping──▶ Shipped
//!      │                          │                           │                      │
//!      ▼                          ▼                           ▼                      ▼
//! StockRejected            PaymentFailed              ShippingFailed          payments: capture
//!      │                          │                           │               inventory: confirm
//!   (done)              inventory: cancel           payments: release               │
//!                                 │                           │                      ▼
//!                                 ▼                           ▼               OrderCompleted
//!                          OrderCancelled       inventory: cancel → OrderCancelled
//! ```
//!
//! What it shows, against [`super::orchestrator`]: no service knows the
//! whole flow — compensation is spread over three reactors' `match` arms,
//! and where an order stands is known only by reading the event stream
//! ([`Choreography::state_of`]). Adding a step means changing who
//! subscribes to what. Nothing is central, so nothing central can fail —
//! but the stream must then be durable and delivered at least once, and
//! every reactor idempotent (the ids here are the orchestrator's, derived
//! from the order id), or a lost event strands an order half done.
//!
//! Simplified: the stream is in memory (a broadcast channel) where a real
//! deployment would use a durable log such as Kafka's; events are not
//! redelivered after a crash. Bound: the stream keeps the last
//! [`STREAM_CAPACITY`] events for slow subscribers.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tokio::task::JoinSet;

use crate::proto::v1::accounts_client::AccountsClient;
use crate::proto::v1::inventory_client::InventoryClient;
use crate::proto::v1::shipping_client::ShippingClient;
use crate::proto::v1::{HoldRef, HoldRequest, HoldState, ShipRequest, ShipmentState};
use observability::rpc::RpcChannel;

/// Events kept for subscribers that fall behind.
pub const STREAM_CAPACITY: usize = 4096;

/// An order as placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub customer: String,
    pub sku: String,
    pub quantity: i64,
    pub price: i64,
    pub destination: String,
}

/// What happened, as every reactor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    OrderPlaced(Order),
    StockReserved(Order),
    StockRejected { order: String, reason: String },
    PaymentHeld(Order),
    PaymentFailed { order: Order, reason: String },
    Shipped(Order),
    ShippingFailed { order: Order, reason: String },
    PaymentCaptured(Order),
    PaymentReleased(Order),
    OrderCompleted(String),
    OrderCancelled { order: String, reason: String },
}

impl Event {
    fn order_id(&self) -> &str {
        match self {
            Event::OrderPlaced(o)
            | Event::StockReserved(o)
            | Event::PaymentHeld(o)
            | Event::Shipped(o)
            | Event::PaymentCaptured(o)
            | Event::PaymentReleased(o)
            | Event::PaymentFailed { order: o, .. }
            | Event::ShippingFailed { order: o, .. } => &o.id,
            Event::StockRejected { order, .. }
            | Event::OrderCompleted(order)
            | Event::OrderCancelled { order, .. } => order,
        }
    }
}

/// The event stream and its three reactors; reactors stop when it drops.
#[derive(Debug)]
pub struct Choreography {
    events: broadcast::Sender<Event>,
    /// Every event published, in order: the only record of where an order
    /// stands.
    history: Arc<Mutex<Vec<Event>>>,
    reactors: JoinSet<()>,
}

impl Choreography {
    /// Starts the reactors, each with a channel to its own service.
    pub fn start(inventory: RpcChannel, accounts: RpcChannel, shipping: RpcChannel) -> Self {
        let (events, _) = broadcast::channel(STREAM_CAPACITY);
        let history = Arc::new(Mutex::new(Vec::new()));
        let mut reactors = JoinSet::new();
        let publish = Publisher {
            events: events.clone(),
            history: history.clone(),
        };
        reactors.spawn(inventory_reactor(
            events.subscribe(),
            publish.clone(),
            InventoryClient::new(inventory),
        ));
        reactors.spawn(payment_reactor(
            events.subscribe(),
            publish.clone(),
            AccountsClient::new(accounts),
        ));
        reactors.spawn(shipping_reactor(
            events.subscribe(),
            publish,
            ShippingClient::new(shipping),
        ));
        Self {
            events,
            history,
            reactors,
        }
    }

    pub fn place(&self, order: Order) {
        Publisher {
            events: self.events.clone(),
            history: self.history.clone(),
        }
        .publish(Event::OrderPlaced(order));
    }

    /// The events of one order so far, oldest first.
    pub fn state_of(&self, order: &str) -> Vec<Event> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|event| event.order_id() == order)
            .cloned()
            .collect()
    }

    /// Waits (up to `within`) until the order completed or was cancelled;
    /// its last event.
    pub async fn outcome(&self, order: &str, within: std::time::Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let last = self.state_of(order).pop();
            if matches!(
                last,
                Some(Event::OrderCompleted(_) | Event::OrderCancelled { .. })
            ) || tokio::time::Instant::now() > deadline
            {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn stop(mut self) {
        self.reactors.abort_all();
    }
}

#[derive(Clone, Debug)]
struct Publisher {
    events: broadcast::Sender<Event>,
    history: Arc<Mutex<Vec<Event>>>,
}

impl Publisher {
    fn publish(&self, event: Event) {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
        let _ = self.events.send(event);
    }
}

/// The next event, skipping over any this subscriber fell behind on.
async fn next(events: &mut broadcast::Receiver<Event>) -> Option<Event> {
    loop {
        match events.recv().await {
            Ok(event) => return Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a reactor fell behind the event stream");
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// Calls again after a transient failure (a few times, with a pause): a
/// reactor owns its retries as the orchestrator owns its own.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(status)
                if attempt < 5
                    && matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                    ) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            other => return other,
        }
    }
}

fn id(order: &Order, what: &str) -> String {
    format!("{}/{what}", order.id)
}

/// Reserves stock for placed orders; confirms or cancels it as payment
/// and shipping report.
async fn inventory_reactor(
    mut events: broadcast::Receiver<Event>,
    publish: Publisher,
    inventory: InventoryClient<RpcChannel>,
) {
    while let Some(event) = next(&mut events).await {
        match event {
            Event::OrderPlaced(order) => {
                let reserved = retried(|| {
                    let mut client = inventory.clone();
                    let request = HoldRequest {
                        hold_id: id(&order, "reservation"),
                        key: order.sku.clone(),
                        amount: order.quantity,
                        ttl_ms: 0,
                    };
                    async move { client.reserve(request).await }
                })
                .await
                .map(|reply| reply.into_inner().state == HoldState::Held as i32);
                publish.publish(match reserved {
                    Ok(true) => Event::StockReserved(order),
                    Ok(false) => Event::StockRejected {
                        order: order.id,
                        reason: "the reservation was cancelled".into(),
                    },
                    Err(status) => Event::StockRejected {
                        order: order.id,
                        reason: status.message().to_owned(),
                    },
                });
            }
            Event::PaymentCaptured(order) => {
                let _ = retried(|| {
                    let mut client = inventory.clone();
                    let request = HoldRef {
                        hold_id: id(&order, "reservation"),
                    };
                    async move { client.confirm(request).await }
                })
                .await;
                publish.publish(Event::OrderCompleted(order.id));
            }
            Event::PaymentFailed { order, reason } => {
                cancel(&inventory, &publish, order, reason).await;
            }
            Event::PaymentReleased(order) => {
                let reason = "shipping failed".to_owned();
                cancel(&inventory, &publish, order, reason).await;
            }
            _ => {}
        }
    }
}

async fn cancel(
    inventory: &InventoryClient<RpcChannel>,
    publish: &Publisher,
    order: Order,
    reason: String,
) {
    let _ = retried(|| {
        let mut client = inventory.clone();
        let request = HoldRef {
            hold_id: id(&order, "reservation"),
        };
        async move { client.cancel(request).await }
    })
    .await;
    publish.publish(Event::OrderCancelled {
        order: order.id,
        reason,
    });
}

/// Holds payment once stock is reserved; captures or releases it as
/// shipping reports.
async fn payment_reactor(
    mut events: broadcast::Receiver<Event>,
    publish: Publisher,
    accounts: AccountsClient<RpcChannel>,
) {
    while let Some(event) = next(&mut events).await {
        match event {
            Event::StockReserved(order) => {
                let held = retried(|| {
                    let mut client = accounts.clone();
                    let request = HoldRequest {
                        hold_id: id(&order, "payment"),
                        key: order.customer.clone(),
                        amount: order.quantity.saturating_mul(order.price),
                        ttl_ms: 0,
                    };
                    async move { client.hold(request).await }
                })
                .await;
                publish.publish(match held {
                    Ok(reply) if reply.get_ref().state == HoldState::Held as i32 => {
                        Event::PaymentHeld(order)
                    }
                    Ok(_) => Event::PaymentFailed {
                        order,
                        reason: "the payment hold was released".into(),
                    },
                    Err(status) => Event::PaymentFailed {
                        order,
                        reason: status.message().to_owned(),
                    },
                });
            }
            Event::Shipped(order) => {
                let _ = retried(|| {
                    let mut client = accounts.clone();
                    let request = HoldRef {
                        hold_id: id(&order, "payment"),
                    };
                    async move { client.capture(request).await }
                })
                .await;
                publish.publish(Event::PaymentCaptured(order));
            }
            Event::ShippingFailed { order, .. } => {
                let _ = retried(|| {
                    let mut client = accounts.clone();
                    let request = HoldRef {
                        hold_id: id(&order, "payment"),
                    };
                    async move { client.release(request).await }
                })
                .await;
                publish.publish(Event::PaymentReleased(order));
            }
            _ => {}
        }
    }
}

/// Ships once payment is held.
async fn shipping_reactor(
    mut events: broadcast::Receiver<Event>,
    publish: Publisher,
    shipping: ShippingClient<RpcChannel>,
) {
    while let Some(event) = next(&mut events).await {
        if let Event::PaymentHeld(order) = event {
            let shipped = retried(|| {
                let mut client = shipping.clone();
                let request = ShipRequest {
                    shipment_id: id(&order, "shipment"),
                    order_id: order.id.clone(),
                    destination: order.destination.clone(),
                };
                async move { client.ship(request).await }
            })
            .await;
            publish.publish(match shipped {
                Ok(reply) if reply.get_ref().state == ShipmentState::Scheduled as i32 => {
                    Event::Shipped(order)
                }
                Ok(_) => Event::ShippingFailed {
                    order,
                    reason: "the shipment was cancelled".into(),
                },
                Err(status) => Event::ShippingFailed {
                    order,
                    reason: status.message().to_owned(),
                },
            });
        }
    }
}
