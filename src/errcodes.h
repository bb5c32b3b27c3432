/*
 * errcodes.h
 *		Every SQLSTATE that oms raises, in one place.
 *
 * oms uses PostgreSQL's standard codes where one fits, and its own class "OM" for business
 * outcomes that an application is expected to handle (a checkout page shows "sold out" for OM001,
 * it does not show a stack trace). The README lists the same table.
 *
 *	code	name						when
 *	-----	--------------------------	---------------------------------------------------------
 *	22P02	invalid_text_representation	an unknown order or line state name
 *	22023	invalid_parameter_value		unknown SKU, location, channel, currency or tenant; a bad
 *										field in a JSON payload
 *	55000	object_not_in_prerequisite_state	an illegal state transition (hint: the legal ones)
 *	OM001	insufficient_stock			a reservation or order asks for more than is available
 *	OM002	stock_below_reserved		set_stock/adjust_stock would take on_hand below reserved
 *	OM003	reserved_counter_guarded	stock.reserved changed other than through reservations
 *	OM004	over_shipment				packing or shipping more of a line than is released and not
 *										yet packed or shipped
 *	OM005	over_return					returning more than was shipped and not yet returned, or
 *										receiving more than the return authorised
 *	OM006	over_capture				capturing more than is authorised and not yet captured
 *	OM007	over_refund					refunding more than was captured and not yet refunded
 *	OM008	over_authorization			authorising more than the order's total
 *	OM009	release_blocked				releasing an order that holds or a missing authorisation block
 *	OM010	return_window_closed		a return created after the channel's return window
 *	OM011	tax_rate_missing			no tax rate for the order's country and an item's tax class on
 *										a channel that handles tax
 *	OM012	over_credit					a credit note for more than was invoiced and not yet credited
 *	OM013	document_immutable			an UPDATE or DELETE of an issued invoice or credit note
 *	OM020	over_receipt				a receipt of more than is still open on a purchase order or
 *										transfer
 *	OM030	capacity_exhausted			a location's daily capacity was taken by a concurrent order
 *										(place_order routes again; it reaches the caller only after
 *										three attempts)
 */
#ifndef OMS_ERRCODES_H
#define OMS_ERRCODES_H

#include "utils/elog.h"

#define ERRCODE_OMS_INSUFFICIENT_STOCK		MAKE_SQLSTATE('O','M','0','0','1')
#define ERRCODE_OMS_STOCK_BELOW_RESERVED	MAKE_SQLSTATE('O','M','0','0','2')
#define ERRCODE_OMS_RESERVED_GUARDED		MAKE_SQLSTATE('O','M','0','0','3')
#define ERRCODE_OMS_OVER_SHIPMENT			MAKE_SQLSTATE('O','M','0','0','4')
#define ERRCODE_OMS_OVER_RETURN				MAKE_SQLSTATE('O','M','0','0','5')
#define ERRCODE_OMS_OVER_CAPTURE			MAKE_SQLSTATE('O','M','0','0','6')
#define ERRCODE_OMS_OVER_REFUND				MAKE_SQLSTATE('O','M','0','0','7')
#define ERRCODE_OMS_OVER_AUTHORIZATION		MAKE_SQLSTATE('O','M','0','0','8')
#define ERRCODE_OMS_RELEASE_BLOCKED			MAKE_SQLSTATE('O','M','0','0','9')
#define ERRCODE_OMS_RETURN_WINDOW_CLOSED	MAKE_SQLSTATE('O','M','0','1','0')
#define ERRCODE_OMS_TAX_RATE_MISSING		MAKE_SQLSTATE('O','M','0','1','1')
#define ERRCODE_OMS_OVER_CREDIT				MAKE_SQLSTATE('O','M','0','1','2')
#define ERRCODE_OMS_DOCUMENT_IMMUTABLE		MAKE_SQLSTATE('O','M','0','1','3')
#define ERRCODE_OMS_OVER_RECEIPT			MAKE_SQLSTATE('O','M','0','2','0')
#define ERRCODE_OMS_CAPACITY_EXHAUSTED		MAKE_SQLSTATE('O','M','0','3','0')

#endif							/* OMS_ERRCODES_H */
