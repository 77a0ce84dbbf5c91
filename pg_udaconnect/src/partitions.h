/*
 * partitions.h — the settings of udaconnect.location's time partitions.
 * See partitions.c and sql/src/15-partitions.sql.
 */
#ifndef UDC_PARTITIONS_H
#define UDC_PARTITIONS_H

/* called from _PG_init(): the GUCs */
extern void udc_partitions_init(void);

extern char *udc_location_partition_width;
extern int	udc_location_partitions_ahead;

#endif							/* UDC_PARTITIONS_H */
