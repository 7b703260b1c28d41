// Package ministry is the connector of the Ministry of Civil Affairs' data
// security exchange platform (部级数据安全交换平台) for cross-province
// household verification. Both directions are asynchronous and correlated
// by reference: Shanghai asks about members registered in another province
// (Ask: accepted now, answered hours later; Lookup polls by the query id),
// and other provinces' requests arrive in an inbound queue (Pull), are
// acknowledged (Ack), answered from Shanghai's data and returned (Return).
// The simulator is ministrysim.
package ministry
