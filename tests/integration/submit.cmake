# The producer (issue 4): libbaton's producer API and baton-submit against
# the stack's Kafka, plus the producer's unit test, which needs no server
# (it links baton_producer, so baton_unit_test() alone cannot build it).
# Included by CMakeLists.txt in this folder, which defines the `stack`
# fixture and baton_integration_test().

add_executable(test_producer ${PROJECT_SOURCE_DIR}/tests/unit/test_producer.c)
target_link_libraries(test_producer PRIVATE baton_producer PkgConfig::CHECK)
add_test(NAME unit.test_producer COMMAND test_producer)
set_tests_properties(unit.test_producer PROPERTIES LABELS unit TIMEOUT 120
                     ENVIRONMENT "CK_DEFAULT_TIMEOUT=60")

add_executable(test_producer_kafka test_producer_kafka.c)
target_link_libraries(test_producer_kafka PRIVATE baton_producer PkgConfig::CHECK)
baton_integration_test(test_producer_kafka
  ${CMAKE_CURRENT_SOURCE_DIR}/with_stack.sh $<TARGET_FILE:test_producer_kafka>)

baton_integration_test(test_submit ${CMAKE_CURRENT_SOURCE_DIR}/test_submit.sh)
