// The one translation unit that compiles Boost.JSON (header-only here: Debian
// ships no libboost_json). Nothing else belongs here.
#include <boost/json/src.hpp>
