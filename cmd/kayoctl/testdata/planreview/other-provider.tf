# A plan of another provider only: plan review refuses it.
resource "terraform_data" "x" {
  input = "not a kayo resource"
}
