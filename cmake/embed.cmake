# baton_embed(TARGET_SOURCE_VAR TABLE_NAME FILE...)
#
# Embeds text files (Lua scripts, SQL migrations) into the binaries at build
# time, so a container or an installed binary never looks for them on disk.
# Generates ${CMAKE_CURRENT_BINARY_DIR}/${TABLE_NAME}.c defining
#
#   const struct baton_embedded_file TABLE_NAME[];   sorted by file name
#   const size_t TABLE_NAME_count;
#
# (struct baton_embedded_file is declared in common/embedded.h) and appends
# that file to the list variable named by TARGET_SOURCE_VAR.
set(BATON_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_run.cmake)

function(baton_embed out_var table)
  set(files ${ARGN})
  list(SORT files)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${table}.c)
  string(REPLACE ";" "|" files_arg "${files}")
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DTABLE=${table} "-DFILES=${files_arg}"
            -P ${BATON_EMBED_SCRIPT}
    DEPENDS ${files} ${BATON_EMBED_SCRIPT}
    COMMENT "Embedding ${table}"
    VERBATIM)
  set(${out_var} ${${out_var}} ${out} PARENT_SCOPE)
endfunction()
