# Tests of the local stack itself: deploy/stack.sh's up/down cycle and the
# embedded Kafka (deploy/kafka_mock.c) speaking the real protocol to kcat and
# to a librdkafka consumer group. Included by CMakeLists.txt in this folder,
# which defines the `stack` fixture and baton_integration_test().

# A consumer-group member for tests: prints the values it receives.
add_executable(test-kafka-group-consume kafka_group_consume.c)
target_link_libraries(test-kafka-group-consume PRIVATE baton_common PkgConfig::RDKAFKA)

# stack_cycle starts and stops stacks of its own, so it does not take the
# fixture; it can run next to the fixture's stack.
add_test(NAME integration.stack_cycle
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_stack_cycle.sh)
set_tests_properties(integration.stack_cycle PROPERTIES
  LABELS integration TIMEOUT 300
  ENVIRONMENT "BATON_KAFKA_MOCK_BIN=${BATON_KAFKA_MOCK_BIN};BATON_STACK_SH=${BATON_STACK_SH}")

baton_integration_test(kcat_consume
  ${CMAKE_CURRENT_SOURCE_DIR}/test_kcat_consume.sh
  $<TARGET_FILE:test-kafka-group-consume>)

# The embedded Kafka's control channel (broker down/up, rtt, leader,
# coordinator; bad commands). It takes brokers down, so it brings up a stack
# of its own (use_own_stack) and needs no fixture.
add_test(NAME integration.kafka_control
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_kafka_control.sh)
set_tests_properties(integration.kafka_control PROPERTIES
  LABELS integration TIMEOUT 300
  ENVIRONMENT "BATON_KAFKA_MOCK_BIN=${BATON_KAFKA_MOCK_BIN};BATON_STACK_SH=${BATON_STACK_SH};BATON_BIN_DIR=${PROJECT_BINARY_DIR};BATON_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
