// The one translation unit that compiles Boost.URL (header-only on this
// machine: Debian ships no libboost_url). Nothing else belongs here.
#include <boost/url/src.hpp>
