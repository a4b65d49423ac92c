# Registers one CTest test per doctest case of TEST_EXECUTABLE. It stands in for
# doctest's own doctestAddTests.cmake (CMakeLists.txt points doctest_discover_tests
# at it), which reads the case names as a CMake list: a name with ';' (we have
# several) became two tests that match no case. Here a name is never a list:
# the listing is cut at newlines and each name is written as one bracket
# argument. Script mode; takes the -D variables doctest_discover_tests passes
# (TEST_EXECUTABLE, TEST_EXECUTOR, TEST_WORKING_DIR, TEST_EXTRA_ARGS,
# TEST_PROPERTIES, TEST_PREFIX, TEST_SUFFIX, TEST_LIST, CTEST_FILE).

if(NOT EXISTS "${TEST_EXECUTABLE}")
  message(FATAL_ERROR "Specified test executable '${TEST_EXECUTABLE}' does not exist")
endif()

# The case names `--list-test-cases ARGS...` prints, one a line, in `out`
# (a text of lines, each ending with a newline: never a CMake list).
function(list_cases out)
  execute_process(
    COMMAND ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" --list-test-cases ${ARGN}
    OUTPUT_VARIABLE listing
    RESULT_VARIABLE result
    WORKING_DIRECTORY "${TEST_WORKING_DIR}")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "Error running '${TEST_EXECUTABLE}' --list-test-cases:\n${result}\n${listing}")
  endif()
  string(REPLACE "\r" "" listing "${listing}")
  set(lines "")
  while(NOT "${listing}" STREQUAL "")
    string(FIND "${listing}" "\n" nl)
    if(nl EQUAL -1)
      set(line "${listing}")
      set(listing "")
    else()
      string(SUBSTRING "${listing}" 0 ${nl} line)
      math(EXPR nl "${nl} + 1")
      string(SUBSTRING "${listing}" ${nl} -1 listing)
    endif()
    if("${line}" STREQUAL "" OR "${line}" MATCHES "^=+$" OR "${line}" MATCHES "^\\[doctest\\] ")
      continue()
    endif()
    string(APPEND lines "${line}\n")
  endwhile()
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

# Configured by CMakeLists.txt (option LUAD_CTEST_PER_FILE): ON registers one
# test per test file (its cases outside the suite "serial", in one process)
# instead of one per case. A start of the ASan build costs ~0.3 s (LeakSanitizer
# scans 94 MB of UBSan records, each with ASan's redzones), ~270 s·core over
# 541 cases; per file it is 82 starts.
set(per_file "@LUAD_CTEST_PER_FILE@")

list_cases(output)
# Cases in the doctest suite "serial" (wall-clock bounds that another test
# running beside them on the same cores could break) run alone: RUN_SERIAL,
# and the label "serial", so that scripts/dev.sh runs them as a group after
# the others (`ctest -LE serial`, then `ctest -L serial`).
list_cases(serial --test-suite=serial)
set(serial "\n${serial}")

# `text` as one bracket argument, whatever it holds.
function(bracket text out)
  set(eq "=")
  while("${text}" MATCHES "]${eq}]")
    string(APPEND eq "=")
  endwhile()
  set(${out} "[${eq}[${text}]${eq}]" PARENT_SCOPE)
endfunction()

bracket("${TEST_EXECUTABLE}" exe)
bracket("${TEST_WORKING_DIR}" dir)
set(extra "")
foreach(arg IN LISTS TEST_EXTRA_ARGS)
  bracket("${arg}" b)
  string(APPEND extra " ${b}")
endforeach()
set(properties "")
foreach(p IN LISTS TEST_PROPERTIES)
  bracket("${p}" b)
  string(APPEND properties " ${b}")
endforeach()

set(script "")
set(names "")
set(seen "\n")
while(NOT "${output}" STREQUAL "")
  string(FIND "${output}" "\n" nl)
  string(SUBSTRING "${output}" 0 ${nl} line)
  math(EXPR nl "${nl} + 1")
  string(SUBSTRING "${output}" ${nl} -1 output)
  string(FIND "${seen}" "\n${line}\n" again)
  if(NOT again EQUAL -1)
    message(FATAL_ERROR "Two test cases are named '${line}': CTest needs one name per case")
  endif()
  string(APPEND seen "${line}\n")
  # doctest splits --test-case at ',' unless escaped, and unescapes '\\'.
  string(REPLACE "\\" "\\\\" filter "${line}")
  string(REPLACE "," "\\," filter "${filter}")
  bracket("--test-case=${filter}" filter)
  bracket("${TEST_PREFIX}${line}${TEST_SUFFIX}" name)
  string(FIND "${serial}" "\n${line}\n" in_serial)
  set(alone "")
  if(NOT in_serial EQUAL -1)
    set(alone " RUN_SERIAL TRUE LABELS serial")
  elseif(per_file)
    continue()  # run with the rest of its file, below
  endif()
  string(APPEND script "add_test(${name} ${TEST_EXECUTOR} ${exe} ${filter}${extra})\n")
  string(APPEND script
         "set_tests_properties(${name} PROPERTIES WORKING_DIRECTORY ${dir}${properties}${alone})\n")
  string(APPEND names " ${name}")
endwhile()

if(per_file)
  # The files that hold cases outside "serial", from doctest's XML listing.
  execute_process(
    COMMAND ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" --list-test-cases --reporters=xml
            --test-suite-exclude=serial
    OUTPUT_VARIABLE listing
    RESULT_VARIABLE result
    WORKING_DIRECTORY "${TEST_WORKING_DIR}")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "Error running '${TEST_EXECUTABLE}' --list-test-cases --reporters=xml:\n${listing}")
  endif()
  string(REGEX MATCHALL "filename=\"[^\"]*\"" files "${listing}")
  list(REMOVE_DUPLICATES files)
  foreach(file IN LISTS files)
    string(REGEX REPLACE "^filename=\"(.*)\"$" "\\1" file "${file}")
    file(RELATIVE_PATH shown "${TEST_WORKING_DIR}" "${file}")
    string(REPLACE "," "\\," filter "${file}")
    bracket("--source-file=${filter}" filter)
    bracket("${TEST_PREFIX}every case of ${shown} but the serial ones${TEST_SUFFIX}" name)
    string(APPEND script
           "add_test(${name} ${TEST_EXECUTOR} ${exe} ${filter} --test-suite-exclude=serial${extra})\n")
    string(APPEND script
           "set_tests_properties(${name} PROPERTIES WORKING_DIRECTORY ${dir}${properties})\n")
    string(APPEND names " ${name}")
  endforeach()
endif()
if(TEST_LIST)
  string(APPEND script "set(${TEST_LIST}${names})\n")
endif()
file(WRITE "${CTEST_FILE}" "${script}")
