mod support_smoke;
