//! Registration messages (codes 101 to 104, PROTOCOL.md §4.4).

use bytes::{BufMut, BytesMut};

use super::wire::{put_str16, put_str32, Reader};
use crate::error::ProtocolError;

/// `RegisterTMRequest` (101) and `RegisterRMRequest` (103).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterRequest {
    /// The client's Seata version, e.g. "2.2.0"; parse it with [`crate::Version::parse`].
    pub version: String,
    /// The application id.
    pub application_id: String,
    /// The transaction service group, e.g. `default_tx_group`.
    pub transaction_service_group: String,
    /// TM: `key=value` lines (auth signature, vgroup, ip); RM: empty.
    pub extra_data: String,
    /// RM only: comma-separated resource ids. Not on the wire for a TM.
    pub resource_ids: String,
}

impl RegisterRequest {
    pub(crate) fn decode(r: &mut Reader<'_>, rm: bool) -> Result<Self, ProtocolError> {
        Ok(RegisterRequest {
            version: r.str16("version")?,
            application_id: r.str16("applicationId")?,
            transaction_service_group: r.str16("transactionServiceGroup")?,
            extra_data: r.str16("extraData")?,
            resource_ids: if rm { r.str32("resourceIds")? } else { String::new() },
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, rm: bool) -> Result<(), ProtocolError> {
        put_str16(buf, &self.version, "version")?;
        put_str16(buf, &self.application_id, "applicationId")?;
        put_str16(buf, &self.transaction_service_group, "transactionServiceGroup")?;
        put_str16(buf, &self.extra_data, "extraData")?;
        if rm {
            put_str32(buf, &self.resource_ids, "resourceIds")?;
        }
        Ok(())
    }

    /// The `key=value` lines of `extra_data` (PROTOCOL.md §6.2), in order.
    pub fn extra_data_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extra_data.lines().filter_map(|l| l.split_once('='))
    }

    /// The resource ids of an RM registration, without empty items.
    pub fn resource_id_list(&self) -> impl Iterator<Item = &str> {
        self.resource_ids.split(',').map(str::trim).filter(|s| !s.is_empty())
    }
}

/// `RegisterTMResponse` (102) and `RegisterRMResponse` (104): no result code on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterResponse {
    /// Whether the registration was accepted; a Java client closes the connection when it was not.
    pub identified: bool,
    /// The server's version string (informational).
    pub version: String,
}

impl RegisterResponse {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(RegisterResponse { identified: r.u8("identified")? == 1, version: r.str16("version")? })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        buf.put_u8(u8::from(self.identified));
        put_str16(buf, &self.version, "version")
    }
}
