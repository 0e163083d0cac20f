# The typed script calls (common/transition.c) against the stack's Redis
# and the real scripts.
add_executable(test_transition_redis test_transition.c)
target_link_libraries(test_transition_redis PRIVATE baton_common PkgConfig::CHECK)
baton_integration_test(test_transition
  ${CMAKE_CURRENT_SOURCE_DIR}/with_stack.sh $<TARGET_FILE:test_transition_redis>)
