/*
 * backend_memory.c — the setting udaconnect.backend_memory_keep: how much
 * freed heap memory each server process keeps for its next statement
 * instead of giving it back to the kernel at once.
 *
 * glibc's malloc returns the top of the heap to the kernel when more than
 * 128 kB of it is free (and serves requests of 128 kB or more from fresh
 * mappings).  A statement that builds a few hundred kilobytes (the rows of
 * encounters() for a person-day, a batch of the ingest) frees them when it
 * ends, and the next statement faults the same pages in again; on the
 * virtual machines we run on, the faults and the TLB flush of each shrink
 * took a third of encounters() for a person-day of the dense conference
 * (35 minor faults a call with glibc's defaults, 0.5 keeping 4 MB;
 * docs/encounters.md, "Reading").  glibc raises its thresholds by itself
 * only after freeing a single allocation of 128 kB or more, which many
 * statements never make.
 * So the postmaster, when it loads the library, allocates and frees one
 * block of half the setting: glibc serves it from a fresh mapping and, on
 * freeing it, raises its own thresholds as it would after any large free
 * (no fresh mapping below that size; the top of the heap is kept up to
 * twice it).  Every server process inherits that, and glibc goes on
 * adjusting upwards for statements that free larger blocks, as it always
 * did (a fixed threshold set with mallopt() would stop that, and would
 * map and unmap every larger block for ever).  Below 256 kB the setting
 * changes nothing (glibc's thresholds start at 128 kB); 0 leaves them.
 * The ingest workers set their own (ingest_worker.c); glibc only (another
 * allocator ignores it).
 *
 * It takes effect when the library loads in the postmaster (with
 * shared_preload_libraries), so that every server process inherits it,
 * hence PGC_POSTMASTER; a library loaded later by one backend (no preload)
 * has no such setting, and glibc's defaults stay.  This file must not
 * keep any memory itself.
 */
#include "postgres.h"

#include <stdlib.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "udc_pg.h"

static int	udc_backend_memory_keep_kb = 4096;

void
udc_backend_memory_init(void)
{
	/* PostgreSQL refuses a PGC_POSTMASTER setting defined after startup */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("udaconnect.backend_memory_keep",
							"Freed heap memory each server process keeps for its next statements instead of returning it to the kernel.",
							"glibc only: the postmaster frees one block of half this size, which raises glibc's thresholds in every process it starts (the heap top is kept up to this, no fresh mapping below half of it). Below 256kB it changes nothing; 0 leaves the defaults. Needs a restart.",
							&udc_backend_memory_keep_kb, 4096, 0, 64 * 1024, PGC_POSTMASTER,
							GUC_UNIT_KB, NULL, NULL, NULL);
#ifdef __GLIBC__
	if (udc_backend_memory_keep_kb >= 256)
	{
		/*
		 * Freed at once: what stays is glibc's raised thresholds.  Through a
		 * volatile pointer, or the compiler may drop the pair as unused.
		 */
		char	   *volatile block = malloc((size_t) udc_backend_memory_keep_kb * 1024 / 2);

		free(block);
	}
#endif
}
