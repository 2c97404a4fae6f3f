//! Daily energy and peak power: the code lives in
//! [`tenant_schema::energy`], shared with the notifier's daily report mail
//! so that its CSV attachment is this panel's export byte for byte.

pub use tenant_schema::energy::*;
