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
 *	OM004	capacity_exhausted			a location's daily capacity was taken by a concurrent order
 *										(place_order routes again; it reaches the caller only after
 *										three attempts)
 */
#ifndef OMS_ERRCODES_H
#define OMS_ERRCODES_H

#include "utils/elog.h"

#define ERRCODE_OMS_INSUFFICIENT_STOCK		MAKE_SQLSTATE('O','M','0','0','1')
#define ERRCODE_OMS_STOCK_BELOW_RESERVED	MAKE_SQLSTATE('O','M','0','0','2')
#define ERRCODE_OMS_RESERVED_GUARDED		MAKE_SQLSTATE('O','M','0','0','3')
#define ERRCODE_OMS_CAPACITY_EXHAUSTED		MAKE_SQLSTATE('O','M','0','0','4')

#endif							/* OMS_ERRCODES_H */
