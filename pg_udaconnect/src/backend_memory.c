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
 * So each process keeps up to the setting at the top of its heap, and
 * requests below half of it come from the heap, as glibc's own adaptive
 * thresholds would after the first large free, but from the start and
 * bounded.  0 leaves glibc's defaults.
 *
 * It is set when the library loads in the postmaster (with
 * shared_preload_libraries), so that every server process inherits it,
 * hence PGC_POSTMASTER; a library loaded later by one backend (no preload)
 * has no such setting, and glibc's defaults stay.  This file must not
 * allocate or free anything itself.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

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
							"Up to this much at the top of the heap is kept, and allocations below half of it come from the heap; 0 leaves the C library's defaults. Needs a restart.",
							&udc_backend_memory_keep_kb, 4096, 0, 64 * 1024, PGC_POSTMASTER,
							GUC_UNIT_KB, NULL, NULL, NULL);
#if defined(__GLIBC__) && defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	if (udc_backend_memory_keep_kb > 0)
	{
		int			keep = udc_backend_memory_keep_kb * 1024;

		/* glibc's own adaptive rule keeps the trim threshold at twice this */
		mallopt(M_MMAP_THRESHOLD, keep / 2);
		mallopt(M_TRIM_THRESHOLD, keep);
	}
#endif
}
