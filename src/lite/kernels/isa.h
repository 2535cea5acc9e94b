// The instruction set the lite kernels choose their hot loops for: the machine's, capped
// by TESSERA_LITE_ISA (avx2 or portable), so that tests on one machine cover every path.
#pragma once

namespace tessera::lite {

enum class Isa { portable, avx2, avx512 };
Isa kernel_isa();

}  // namespace tessera::lite
