# Container and monitoring files (deploy/Dockerfile, docker-compose.yml,
# deploy/prometheus*.yml, deploy/grafana*): checked without a Docker engine
# and without the local stack, so no fixture. Needs Debian's docker-compose
# package (`docker-compose config`) and fails, saying so, without it.
# The four binaries are passed so the test can check that the image's
# runtime packages hold every library they link.
add_test(NAME deploy.compose
         COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/test_compose.sh
                 $<TARGET_FILE:baton-scheduler> $<TARGET_FILE:baton-worker>
                 $<TARGET_FILE:batonctl> $<TARGET_FILE:baton-submit>)
set_tests_properties(deploy.compose PROPERTIES LABELS deploy TIMEOUT 120)
