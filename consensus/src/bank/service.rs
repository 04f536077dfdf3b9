//! The ledger's gRPC service: commands on the write side
//! ([`super::BankLedger`]), queries on the read side.

use replication::event_sourcing::{EventStore, StoreError, Version};
use tonic::{Request, Response, Status};

use super::commands::BankLedger;
use super::events::{
    BankEvent, check_account_id, check_amount, check_owner, check_request_id, stream_of,
};
use super::{BankError, MAX_ACCOUNTS, MAX_PAGE};
use crate::proto::v1::bank_ledger_server::BankLedger as Api;
use crate::proto::v1::{
    AccountBalance, AccountRef, AuditEntry, AuditReply, AuditRequest, BankReply, HistoryReply,
    HistoryRequest, ImportRequest, LedgerEvent, MoneyRequest, OpenAccountRequest, TransferRequest,
};

/// A page size: 0 asks for the default, anything else is capped.
fn page(limit: u32) -> usize {
    match limit as usize {
        0 => MAX_PAGE,
        n => n.min(MAX_PAGE),
    }
}

#[tonic::async_trait]
impl<S: EventStore + 'static> Api for BankLedger<S> {
    async fn open_account(
        &self,
        request: Request<OpenAccountRequest>,
    ) -> Result<Response<BankReply>, Status> {
        let request = request.into_inner();
        check_account_id(&request.account)?;
        check_owner(&request.owner)?;
        if self.open_accounts() >= MAX_ACCOUNTS {
            return Err(BankError::TooManyAccounts { max: MAX_ACCOUNTS }.into());
        }
        let event = BankEvent::AccountOpened {
            owner: request.owner,
        };
        let outcome = self.execute(&request.account, event).await?;
        Ok(Response::new(self.reply(&request.account, outcome).await?))
    }

    async fn deposit(&self, request: Request<MoneyRequest>) -> Result<Response<BankReply>, Status> {
        let request = request.into_inner();
        check_account_id(&request.account)?;
        check_amount(request.amount_cents)?;
        check_request_id(&request.request_id)?;
        let event = BankEvent::Deposited {
            amount_cents: request.amount_cents,
            request_id: request.request_id,
        };
        let outcome = self.execute(&request.account, event).await?;
        Ok(Response::new(self.reply(&request.account, outcome).await?))
    }

    async fn withdraw(
        &self,
        request: Request<MoneyRequest>,
    ) -> Result<Response<BankReply>, Status> {
        let request = request.into_inner();
        check_account_id(&request.account)?;
        check_amount(request.amount_cents)?;
        check_request_id(&request.request_id)?;
        let event = BankEvent::Withdrawn {
            amount_cents: request.amount_cents,
            request_id: request.request_id,
        };
        let outcome = self.execute(&request.account, event).await?;
        Ok(Response::new(self.reply(&request.account, outcome).await?))
    }

    async fn transfer(
        &self,
        request: Request<TransferRequest>,
    ) -> Result<Response<BankReply>, Status> {
        Ok(Response::new(
            BankLedger::transfer(self, &request.into_inner()).await?,
        ))
    }

    async fn get_balance(
        &self,
        request: Request<AccountRef>,
    ) -> Result<Response<AccountBalance>, Status> {
        let account = request.into_inner().account;
        check_account_id(&account)?;
        let row = self
            .read
            .read(|models| models.balances.accounts.get(&account).cloned())
            .filter(|row| !row.owner.is_empty())
            .ok_or_else(|| BankError::UnknownAccount {
                account: account.clone(),
            })?;
        Ok(Response::new(AccountBalance {
            account,
            owner: row.owner,
            balance_cents: row.balance_cents,
            version: row.version,
        }))
    }

    async fn audit(&self, request: Request<AuditRequest>) -> Result<Response<AuditReply>, Status> {
        let request = request.into_inner();
        check_account_id(&request.account)?;
        let limit = page(request.limit);
        let (entries, more, current) = self
            .read
            .read(|models| {
                let rows = models.audit.accounts.get(&request.account)?;
                let current = rows.back().map_or(0, |row| row.version);
                let mut after = rows
                    .iter()
                    .filter(|row| row.version > request.after_version);
                let entries: Vec<AuditEntry> = after
                    .by_ref()
                    .take(limit)
                    .map(|row| AuditEntry {
                        version: row.version,
                        position: row.position,
                        kind: row.kind.clone(),
                        amount_cents: row.amount_cents,
                        counterparty: row.counterparty.clone(),
                        request_id: row.request_id.clone(),
                        balance_after_cents: row.balance_after_cents,
                    })
                    .collect();
                Some((entries, after.next().is_some(), current))
            })
            .ok_or_else(|| BankError::UnknownAccount {
                account: request.account.clone(),
            })?;
        if request.after_version > current {
            return Err(BankError::VersionAhead {
                account: request.account,
                requested: request.after_version,
                current,
            }
            .into());
        }
        Ok(Response::new(AuditReply {
            account: request.account,
            entries,
            more,
        }))
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryReply>, Status> {
        let request = request.into_inner();
        let stream = stream_of(&request.account)?;
        let read = self
            .store
            .read_stream(&stream, Version(request.after_version), page(request.limit))
            .await;
        let events = match read {
            Ok(events) => events,
            Err(StoreError::StreamNotFound { .. }) => {
                return Err(BankError::UnknownAccount {
                    account: request.account,
                }
                .into());
            }
            Err(err) => return Err(BankError::from(err).into()),
        };
        let version = events.last().map_or(request.after_version, |e| e.version.0);
        let events = events
            .into_iter()
            .map(|event| {
                let event = self.upcaster.upcast(event)?;
                Ok(LedgerEvent {
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    payload_json: String::from_utf8_lossy(&event.payload).into_owned(),
                    version: event.version.0,
                    position: event.position.0,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(BankError::from)?;
        Ok(Response::new(HistoryReply {
            account: request.account,
            events,
            version,
        }))
    }

    async fn import(&self, request: Request<ImportRequest>) -> Result<Response<BankReply>, Status> {
        Ok(Response::new(
            BankLedger::import(self, &request.into_inner()).await?,
        ))
    }
}
