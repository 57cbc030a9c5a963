//! Windows only: the parts several concerns share — [`net`] wraps the IP Helper API calls
//! (interfaces, addresses, routes, the best default route, `IP_UNICAST_IF`), [`pipe`] the named
//! pipes' security descriptors, and [`service`] runs the daemon under the Service Control Manager.

pub mod acl;
pub mod net;
pub mod pipe;
pub mod service;
