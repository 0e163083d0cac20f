# Ingest (issue 3): the scheduler's Kafka -> Redis path, against the stack.
# test_scheduler_queues (issue 13): --queues-allowed and idle queues.
# test_ingest_dlq_outage (issue 13): a DLQ that refuses writes, on a stack of its own.
foreach(t test_ingest_order test_ingest_idempotent test_ingest_delayed
          test_ingest_bad_input test_ingest_group_split test_scheduler_queues
          test_ingest_dlq_outage)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
